/**
 * The shipped Grafana dashboard and Prometheus alert rules must not drift from the metrics
 * the gateway serves: every metric they reference is on /metrics of a running gateway (a
 * histogram's _bucket/_sum/_count series by its base name), and every label they filter or
 * group on is one of that metric's labels.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { type TestGateway, startTestGateway } from '../support/gateway.js';

const DASHBOARD = 'deploy/grafana/egress-gateway.json';
const ALERTS = 'deploy/prometheus/egress-gateway-alerts.yml';
/** Labels Prometheus adds at scrape time, and histogram buckets' `le`. */
const SCRAPE_LABELS = new Set(['instance', 'job', 'le']);

interface Dashboard {
  panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ query?: unknown }> };
}

function dashboardExprs(): string[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of d.templating.list) if (typeof v.query === 'string' && v.query.includes('egress_')) exprs.push(v.query);
  return exprs;
}

function alertExprs(): string[] {
  const a = parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  return a.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

/** `# TYPE name kind` and the label names seen on its samples, from an exposition. */
function exposition(text: string): Map<string, { type: string; labels: Set<string> }> {
  const out = new Map<string, { type: string; labels: Set<string> }>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) out.set(t[1]!, { type: t[2]!, labels: new Set() });
  }
  return out;
}

/** Metric names in a PromQL expression, with the label names it selects or groups by. */
function references(expr: string): Array<{ metric: string; labels: string[] }> {
  const refs: Array<{ metric: string; labels: string[] }> = [];
  for (const m of expr.matchAll(/\b(egress_[a-z0-9_]+)(\{[^}]*\})?/g)) {
    const labels = [...(m[2] ?? '').matchAll(/([a-z_]+)\s*(?:=~|!=|!~|=)/g)].map((x) => x[1]!);
    refs.push({ metric: m[1]!, labels });
  }
  // Grouping labels apply to the metric inside the aggregation.
  const grouped = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((g) => g[1]!.split(',').map((s) => s.trim()));
  for (const r of refs) r.labels.push(...grouped);
  return refs;
}

let gw: TestGateway;
let metrics: Map<string, { type: string; labels: Set<string> }>;
/** Label names per metric, from the metric definitions (samples may not exist yet). */
let labelsOf: Map<string, Set<string>>;

beforeAll(async () => {
  gw = await startTestGateway();
  metrics = exposition(await (await fetch(`${gw.apiUrl}/metrics`)).text());
  const { registry } = await import('../../src/metrics.js');
  labelsOf = new Map();
  for (const m of await registry.getMetricsAsJSON()) {
    const names = new Set<string>();
    for (const v of m.values) for (const k of Object.keys(v.labels)) names.add(k);
    // prom-client's metrics declare labelNames; the DNS door's fast counters and histograms label(s)/labelName.
    const declared = registry.getSingleMetric(m.name) as unknown as { labelNames?: readonly string[]; labelName?: string } | undefined;
    for (const k of declared?.labelNames ?? []) names.add(k);
    if (declared?.labelName !== undefined) names.add(declared.labelName);
    labelsOf.set(m.name, names);
  }
});

afterAll(async () => {
  await gw?.close();
});

function base(name: string): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && metrics.get(name.slice(0, -suffix.length))?.type === 'histogram') return name.slice(0, -suffix.length);
  }
  return name;
}

describe.each([
  ['Grafana dashboard', dashboardExprs],
  ['Prometheus alert rules', alertExprs],
] as const)('%s', (_what, exprs) => {
  it('references metrics, and only metrics, that a running gateway serves', () => {
    const all = exprs();
    expect(all.length).toBeGreaterThan(5);
    const missing = all.flatMap((e) => references(e).map((r) => r.metric)).filter((m) => !metrics.has(base(m)));
    expect(missing).toEqual([]);
  });

  it('filters and groups only on labels those metrics have', () => {
    const wrong: string[] = [];
    for (const e of exprs()) {
      for (const r of references(e)) {
        const have = labelsOf.get(base(r.metric));
        if (have === undefined) continue; // not a prom-client metric of this process: checked by name above
        for (const l of r.labels) if (!SCRAPE_LABELS.has(l) && !have.has(l)) wrong.push(`${r.metric}: ${l}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

it('the dashboard covers decisions by door and reason, would-deny, latency, connections, DNS cache and the denial record', () => {
  const all = dashboardExprs().join('\n');
  for (const needle of ['egress_decisions_total{', 'decision="would_deny"', 'egress_decision_duration_seconds_bucket', 'egress_active_connections', 'egress_dns_cache_total', 'egress_denial_events_dropped_total']) expect(all).toContain(needle);
});
