/**
 * Threat: one door admitting what another refuses. Every row of the shared case table
 * (test/fixtures/hostname-cases.ts) goes through every door of one real gateway — HTTP
 * proxy (absolute-form GET), CONNECT, SOCKS5, transparent HTTP (Host), transparent TLS
 * (SNI) and DNS — and each door must reach the row's decision, for the row's reason:
 *   - allow: the origin's answer (its JSON echo, or its certificate) comes back through
 *     the door; a public IP literal is admitted and dialled into an unreachable route
 *     (test/support/public-unreachable.ts: no packet leaves the host);
 *   - deny: the door's own denial (403 + X-Egress-Denied-Reason and the devbox's policy in
 *     the body, SOCKS 0x02, TLS access_denied, NXDOMAIN + EDE 15 naming policy and reason);
 *   - egress_decisions_total{door} grows by exactly that one decision (DNS, which counts in
 *     one-second batches, is checked in total at the end with the other doors).
 * Where a door cannot carry a row, or legitimately answers differently, doorExpectation()
 * says so in one line; such rows are left out for that door, and a test checks that every
 * row left out is left out for one of the reasons its door's protocol gives (LEFT_OUT).
 *
 * Report-only rows: every row runs again under the same policy in report mode. What the
 * policy would deny (not_allowlisted, ip_literal) then goes through and is counted as
 * would_deny; guardrail, unreadable-name and mismatch refusals stay exactly as enforced.
 *
 * Rows carry their own policies, so each distinct policy gets its own devbox on its own
 * loopback source address (127.0.0.10, .11, …) rather than re-attaching one devbox
 * between rows: no case can see a previous case's policy through a cache.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { domainToASCII } from 'node:url';
import type { Door, Reason } from '../../src/policy/decision.js';
import { DOORS as REGISTRY } from '../../src/doors/registry.js';
import { flagOf } from '../../src/config.js';
import { type CasePolicy, type HostnameCase, HOSTNAME_CASES, LOOPBACK_SPELLINGS } from '../fixtures/hostname-cases.js';
import { INVALID_HOSTS } from '../fixtures/hostnames.js';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { type TestGateway, startTestGateway } from '../support/gateway.js';
import { unreachablePublic } from '../support/public-unreachable.js';
import { type Origin, startHttpOrigin, startHttpsOrigin } from '../support/origin.js';
import { type ClientOptions, type Outcome, connectThenGet, countsDelta, decisionCounts, dnsAsk, dnsWireName, httpProxyGet, socks5ConnectThenGet, transparentHttpGet, transparentTlsHandshake, transparentTlsRawHello } from '../support/door-clients.js';

/**
 * Every door that decides destinations a client names, as egress_decisions_total labels it
 * (src/doors/registry.ts): a new one needs its client in CLIENTS below, or the table fails.
 */
const DOORS: readonly DoorName[] = REGISTRY.filter((d) => d.clientDestinations).flatMap((d) => d.labels);
type DoorName = Door;

const TIMEOUT_MS = 2500;

interface DoorCase {
  title: string;
  row: HostnameCase;
  /** The host as this door's client sends it. */
  host: string;
  expect: 'allow' | 'deny' | 'malformed';
  /** The decision counted (and, where the door reports one, shown); null for 'malformed' (no decision is made). */
  reason: Reason | null;
  /** Why this door's expectation differs from the row's, when it does. */
  differs?: string;
  /** Allowed to a public address: the test does not wait for the dial (see 'admitted'). */
  publicDial: boolean;
  /** TLS: the alert the door must send. */
  alert?: string;
  /** TLS: send a hand-made ClientHello (OpenSSL cuts server names at NUL and drops those over 255 bytes). */
  rawHello?: boolean;
}

type Skip = { skip: string };

/** A destination name from the fixture's INVALID_HOSTS, by its `why`. */
function invalid(why: string): string {
  const c = INVALID_HOSTS.find((x) => x.why === why);
  if (c === undefined || typeof c.input !== 'string') throw new Error(`INVALID_HOSTS has no string case "${why}"`);
  return c.input;
}

/** Hosts an HTTP request line / absolute URL / CONNECT target cannot carry: 400 before any decision. */
const NOT_AN_AUTHORITY = new Map<string, string>([
  [invalid('empty'), 'an http URI or CONNECT target with an empty host is invalid (RFC 9110 §4.2.1)'],
  [invalid('absurdly long'), "over the proxy's 1100-character authority bound"],
  [invalid('space'), 'a space ends the request-target'],
  [invalid('NUL byte'), 'NUL is not allowed in a request line'],
  [invalid('CR LF'), 'CR LF ends the request line'],
  [invalid('userinfo'), 'userinfo is refused in a proxy request (RFC 9110 §4.2.4)'],
  [invalid('backslash'), 'a backslash is not a URI character'],
  [invalid('zero-width space'), 'a request-target is ASCII (RFC 9112 §3.2); an IDNA client would drop the character'],
  [invalid('soft hyphen'), 'a request-target is ASCII (RFC 9112 §3.2); an IDNA client would drop the character'],
  [invalid('unclosed IPv6 bracket'), 'an unclosed IP-literal'],
  [invalid('port left in the name'), 'HOST:443:PORT has two ports'],
]);

/** Host header values that are not a uri-host (RFC 9110 §7.2): the transparent HTTP door answers 400 before deciding. */
const NOT_A_HOST_HEADER = new Map<string, string>([
  [invalid('empty'), 'an empty Host names no destination'],
  [invalid('absurdly long'), "over the door's 1100-character authority bound"],
  [invalid('space'), 'not a uri-host'],
  [invalid('NUL byte'), 'NUL is not allowed in a field value (RFC 9110 §5.5)'],
  [invalid('userinfo'), 'not a uri-host'],
  [invalid('slash'), 'not a uri-host'],
  [invalid('backslash'), 'not a uri-host'],
  [invalid('unclosed IPv6 bracket'), 'not a uri-host'],
  [invalid('zero-width space'), 'a Host field value is ASCII here, as the request-target is (RFC 9112 §3.2): 400 bad_host'],
  [invalid('soft hyphen'), 'a Host field value is ASCII here, as the request-target is (RFC 9112 §3.2): 400 bad_host'],
]);

/** SNI bytes the door reads as a name (src/doors/floor/clienthello.ts hostName(): anything else is a malformed hello). */
const SNI_READABLE = /^[A-Za-z0-9._-]{1,254}$/;

const isLoopbackSpelling = (host: string) => (LOOPBACK_SPELLINGS as readonly string[]).includes(host);
const isAscii = (host: string) => /^[\x00-\x7f]*$/.test(host);

/**
 * What `door` must do with `row`: the row's own decision unless a line below says why the
 * door differs. Returns a Skip (with its reason) when the door cannot carry the row at all.
 */
function doorExpectation(door: DoorName, row: HostnameCase): Omit<DoorCase, 'title' | 'row'> | Skip {
  let host = row.host;
  let expectation: DoorCase['expect'] = row.expect;
  let reason: Reason | null = row.reason;
  let differs: string | undefined;
  const malformed = (why: string) => {
    expectation = 'malformed';
    reason = null;
    differs = why;
  };
  // An IP literal is not a DNS name: the DNS door has no such destination (fixture note).
  if (door === 'dns' && row.ipLiteral) return { skip: 'IP literals are not DNS names' };
  // SNI carries host names only (RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted").
  if (door === 'transparent-tls' && row.ipLiteral) return { skip: 'IP literals are not valid SNI' };
  // The test gateway runs with --allow-private 127.0.0.0/8, so 127.0.0.1 in any spelling is
  // exempt from the guardrail and the row's allowed_cidrs (127.0.0.0/8) admits it ([::1] stays private).
  if (isLoopbackSpelling(row.host)) {
    expectation = 'allow';
    reason = 'cidr';
    differs = 'the test gateway exempts 127.0.0.0/8 (--allow-private)';
  }
  // Only SOCKS5 carries a name as raw bytes; HTTP, TLS and DNS carry ASCII, so a client sends an
  // IDN as its A-label (UTS #46, as curl, browsers and resolvers do). Rows that expect invalid_host
  // stay raw: IDNA would silently turn them into a valid, different name (github\u200b.com → github.com).
  if (door !== 'socks5' && !isAscii(host) && row.reason !== 'invalid_host') host = domainToASCII(host);

  let alert: string | undefined;
  let rawHello = false;
  switch (door) {
    case 'http':
    case 'connect':
      if (NOT_AN_AUTHORITY.has(host)) malformed(NOT_AN_AUTHORITY.get(host)!);
      // The URL's authority ends at '/': it names github.com, and the Host header does not agree.
      else if (host === invalid('slash') && door === 'http') [expectation, reason, differs] = ['deny', 'host_mismatch' as Reason, 'the URL authority ends at "/"'];
      else if (host === invalid('slash')) malformed('a CONNECT target is host:port (RFC 9110 §9.3.6)');
      break;
    case 'transparent-http':
      // The client's CR LF ends the Host field: what is left is a request for github.com, then junk.
      if (host === invalid('CR LF')) return { skip: 'CR LF ends the Host field; the request left names github.com' };
      if (NOT_A_HOST_HEADER.has(host)) malformed(NOT_A_HOST_HEADER.get(host)!);
      // "Host: github.com:443" is host github.com, port 443 (the door dials its fixed port): the policy admits github.com.
      else if (host === invalid('port left in the name')) [expectation, reason, differs] = ['allow', 'hostname', 'a Host header carries host:port'];
      break;
    case 'socks5':
      if (Buffer.byteLength(host) > 255) return { skip: 'a SOCKS5 domain has a one-octet length' };
      if (host === '') malformed('a zero-length SOCKS5 domain is malformed (reply 0x01)');
      break;
    case 'transparent-tls':
      rawHello = host.includes('\u0000') || Buffer.byteLength(host) > 255;
      // No server_name at all (node sends none for ''): the door counts invalid_host and answers unrecognized_name.
      if (host === '') alert = 'unrecognized_name';
      // By design the door does not guess at a server_name outside [A-Za-z0-9._-]{1,254}: decode_error, no decision.
      else if (!SNI_READABLE.test(host)) {
        malformed('a server_name outside [A-Za-z0-9._-]{1,254} is a malformed ClientHello');
        alert = 'decode_error';
      } else if (expectation === 'deny') alert = 'access_denied';
      break;
    case 'dns': {
      const w = dnsWireName(host);
      if (w.wire === null) return { skip: `a DNS question cannot carry it: ${w.why}` };
      if (!w.ok) malformed(`not a DNS name on the wire (${w.why}): FORMERR`);
      break;
    }
  }
  const publicDial = expectation === 'allow' && row.ipLiteral === true && !isLoopbackSpelling(row.host);
  return { host, expect: expectation, reason, publicDial, ...(differs ? { differs } : {}), ...(alert ? { alert } : {}), ...(rawHello ? { rawHello } : {}) };
}

function display(host: string): string {
  const j = JSON.stringify(host);
  return j.length > 48 ? `${j.slice(0, 40)}…" (${host.length} chars)` : j;
}

/** Why a door may leave a row out: what its protocol cannot carry (none: it carries every row). Anything else is a bug in the table. */
const LEFT_OUT: Partial<Record<DoorName, RegExp[]>> = {
  http: [],
  connect: [],
  socks5: [/^a SOCKS5 domain has a one-octet length$/],
  'transparent-http': [/^CR LF ends the Host field/],
  'transparent-tls': [/^IP literals are not valid SNI$/],
  dns: [/^IP literals are not DNS names$/, /^a DNS question cannot carry it: /],
};

function casesFor(door: DoorName): { run: DoorCase[]; skipped: Array<{ title: string; why: string }> } {
  const run: DoorCase[] = [];
  const skipped: Array<{ title: string; why: string }> = [];
  for (const row of HOSTNAME_CASES) {
    const e = doorExpectation(door, row);
    if ('skip' in e) {
      skipped.push({ title: `${door}: ${row.name} ${display(row.host)} — n/a: ${e.skip}`, why: e.skip });
      continue;
    }
    const what = e.expect === 'malformed' ? 'refused as malformed' : `${e.expect} (${e.reason})`;
    const sent = e.host === row.host ? '' : ` sent as ${display(e.host)}`;
    run.push({ ...e, row, title: `${door}: ${row.name} ${display(row.host)}${sent} → ${what}` });
  }
  return { run, skipped };
}

// ── one gateway for the file ──────────────────────────────────────────────────

let dns: DnsUpstream;
let httpOrigin: Origin;
let httpsOrigin: Origin;
let gw: TestGateway;
/** egress_decisions_total once the devboxes exist, before the first case. */
let baseline: Map<string, number>;
/** JSON of a row's policy → the source address of the devbox running under it. */
const sourceFor = new Map<string, string>();
/** JSON of a row's policy → its policy id. */
const policyIdFor = new Map<string, string>();
const policyKey = (p: CasePolicy) => JSON.stringify(p);
/** The same, for the report-only copy of each policy. */
const reportSourceFor = new Map<string, string>();
const reportPolicyIdFor = new Map<string, string>();

/** What a report-only policy lets through: its own denials (never guardrails, unreadable names or mismatches). */
const REPORTABLE: ReadonlySet<Reason | null> = new Set<Reason | null>(['not_allowlisted', 'ip_literal']);

/** Every name in the table, as a resolver would ask for it: each answers 127.0.0.1. */
function tableNames(): string[] {
  const names = new Set<string>();
  for (const row of HOSTNAME_CASES) {
    if (row.ipLiteral) continue;
    const ascii = domainToASCII(row.host).toLowerCase().replace(/\.$/, '');
    if (ascii !== '') names.add(ascii);
  }
  return [...names];
}

let unreachableUndo: (() => void) | null = null;

beforeAll(async () => {
  // The allowed public IP literals (8.8.8.0/24, 1.1.1.1) are dialled for real: drop them on this host.
  unreachableUndo = unreachablePublic(['8.8.8.0/24', '1.1.1.1/32']);
  // Denied names resolve too: a wrong allow would then really connect and show up as one.
  dns = await startDnsUpstream({ records: loopbackRecords(tableNames()) });
  httpOrigin = await startHttpOrigin();
  httpsOrigin = await startHttpsOrigin();
  gw = await startTestGateway({
    upstreamDnsPort: dns.port,
    flags: {
      // Every door of the table listens, the ones off by default (transparent TLS and HTTP) included.
      ...Object.fromEntries(REGISTRY.filter((d) => d.clientDestinations).map((d) => [flagOf(d.setting), '127.0.0.1:0'])),
      'transparent-tls-upstream-port': String(httpsOrigin.port),
      'transparent-http-upstream-port': String(httpOrigin.port),
      // Allowed public IP literals are dialled for real (into an unreachable route); do not wait long for them.
      'connect-timeout-ms': '500',
      'dns-rate-limit': '0',
    },
  });
  // One devbox per distinct policy in the table, each on its own loopback source address.
  let n = 10;
  for (const row of HOSTNAME_CASES) {
    const key = policyKey(row.policy);
    if (sourceFor.has(key)) continue;
    const source = `127.0.0.${n++}`;
    const id = await gw.api.policy(`case-table-${n}`, row.policy as Record<string, unknown>);
    await gw.api.devbox(id, [source], `box-${source}`);
    sourceFor.set(key, source);
    policyIdFor.set(key, id);
    const reportSource = `127.0.1.${n}`;
    const reportId = await gw.api.policy(`case-table-${n}-report`, { ...(row.policy as Record<string, unknown>), enforcement: 'report' });
    await gw.api.devbox(reportId, [reportSource], `box-${reportSource}`);
    reportSourceFor.set(key, reportSource);
    reportPolicyIdFor.set(key, reportId);
  }
  baseline = await decisionCounts(gw.apiUrl);
});

afterAll(async () => {
  await gw?.close();
  unreachableUndo?.();
  await httpOrigin?.close();
  await httpsOrigin?.close();
  await dns?.close();
});

/** Resolves once egress_decisions_total{door,decision="allow",reason} passed `from`. */
async function allowCounted(door: DoorName, reason: Reason | null, from: Map<string, number>, stop: { done: boolean }): Promise<void> {
  const key = `${door}|allow|${reason}`;
  while (!stop.done) {
    const now = await decisionCounts(gw.apiUrl);
    if ((now.get(key) ?? 0) > (from.get(key) ?? 0)) return;
    await new Promise((r) => setTimeout(r, 15));
  }
  return new Promise(() => {});
}

/** How a real client asks each door for a case's destination. */
const CLIENTS: Partial<Record<DoorName, (c: DoorCase, opts: ClientOptions) => Promise<Outcome>>> = {
  http: (c, opts) => httpProxyGet(gw.addr('http-proxy').port, c.host, httpOrigin.port, opts),
  connect: (c, opts) => connectThenGet(gw.addr('http-proxy').port, c.host, httpOrigin.port, opts),
  socks5: (c, opts) => socks5ConnectThenGet(gw.addr('socks5').port, c.host, httpOrigin.port, opts),
  'transparent-http': (c, opts) => transparentHttpGet(gw.addr('transparent-http').port, c.host, opts),
  'transparent-tls': (c, opts) => (c.rawHello ? transparentTlsRawHello(gw.addr('transparent-tls').port, c.host, opts) : transparentTlsHandshake(gw.addr('transparent-tls').port, c.host, { ...opts, expectSubjectCN: 'egress-test' })),
  dns: (c, opts) => dnsAsk(gw.addr('dns').port, dnsWireName(c.host).wire!, opts),
};

function ask(door: DoorName, c: DoorCase, opts: ClientOptions): Promise<Outcome> {
  const client = CLIENTS[door];
  if (client === undefined) throw new Error(`no client for door ${door} in CLIENTS`);
  return client(c, opts);
}

/** What every decision the table makes adds to egress_decisions_total, as `door|decision|reason` → n. */
const expectedCounts = new Map<string, number>();

describe.each(DOORS)('door %s, every row of the case table', (door) => {
  // Rows a door cannot carry (doorExpectation() gives the reason) are not run for it.
  const { run } = casesFor(door);
  for (const c of run) {
    if (c.expect === 'malformed') continue;
    const key = `${door}|${c.expect}|${c.reason}`;
    expectedCounts.set(key, (expectedCounts.get(key) ?? 0) + 1);
  }

  it.each(run.map((c) => [c.title, c] as const))('%s', async (_title, c) => {
    const source = sourceFor.get(policyKey(c.row.policy))!;
    const before = await decisionCounts(gw.apiUrl);
    const stop = { done: false };
    const outcome = await ask(door, c, {
      source,
      timeoutMs: TIMEOUT_MS,
      ...(c.publicDial ? { admitted: allowCounted(door, c.reason, before, stop) } : {}),
    }).finally(() => (stop.done = true));
    const delta = countsDelta(before, await decisionCounts(gw.apiUrl));
    const mine = Object.fromEntries(Object.entries(delta).filter(([k]) => k.startsWith(`${door}|`)));
    const evidence = `${outcome.evidence}${c.differs ? ` [door differs: ${c.differs}]` : ''}`;

    if (c.expect === 'allow') {
      // A public address is admitted and dialled; whether it answers is not ours to test.
      const kinds = c.publicDial ? ['allow', 'admitted', 'upstream'] : ['allow'];
      expect(kinds, evidence).toContain(outcome.kind);
    } else if (c.expect === 'deny') {
      expect(outcome.kind, evidence).toBe('deny');
      // HTTP answers and DNS EDE name the reason; SOCKS5 replies and TLS alerts cannot (the counter below does).
      if (door !== 'socks5' && door !== 'transparent-tls') {
        expect(outcome.reason, evidence).toBe(c.reason);
        // ...and the devbox's policy: the denial (and its log line) must say which policy refused.
        expect(outcome.policy, `the denial names the devbox's policy: ${evidence}`).toBe(policyIdFor.get(policyKey(c.row.policy)));
      }
    } else {
      expect(outcome.kind, evidence).toBe('malformed');
    }
    if (c.alert !== undefined) expect(outcome.alert, evidence).toBe(c.alert);
    // Exactly this one decision counted under this door's label (none for malformed input).
    // DNS decisions reach the counter in one-second batches (src/resolver/metrics.ts): checked in total below.
    if (door !== 'dns') expect(mine, evidence).toEqual(c.expect === 'malformed' ? {} : { [`${door}|${c.expect}|${c.reason}`]: 1 });
  });
});

describe.each(DOORS)('door %s, every row under the report-only copy of its policy', (door) => {
  // Public IP literals admitted here would be dialled for real: the enforced rows above already
  // dial them once; report mode is not worth a second round of outside connections.
  const run = casesFor(door).run.filter((c) => !c.publicDial && !(c.row.ipLiteral && REPORTABLE.has(c.reason) && c.expect === 'deny' && !isLoopbackSpelling(c.row.host)));
  const label = (c: DoorCase) => (c.expect === 'deny' && REPORTABLE.has(c.reason) ? 'would_deny' : c.expect);
  for (const c of run) {
    if (c.expect === 'malformed') continue;
    const key = `${door}|${label(c)}|${c.reason}`;
    expectedCounts.set(key, (expectedCounts.get(key) ?? 0) + 1);
  }

  it.each(run.map((c) => [`${c.title}${label(c) === 'would_deny' ? ' → let through as would_deny' : ''}`, c] as const))('report: %s', async (_title, c) => {
    const source = reportSourceFor.get(policyKey(c.row.policy))!;
    const before = await decisionCounts(gw.apiUrl);
    const outcome = await ask(door, { ...c, alert: label(c) === 'would_deny' ? undefined : c.alert }, { source, timeoutMs: TIMEOUT_MS });
    const delta = countsDelta(before, await decisionCounts(gw.apiUrl));
    const mine = Object.fromEntries(Object.entries(delta).filter(([k]) => k.startsWith(`${door}|`)));
    const evidence = `${outcome.evidence}${c.differs ? ` [door differs: ${c.differs}]` : ''}`;
    if (label(c) === 'would_deny' || c.expect === 'allow') {
      expect(outcome.kind, evidence).toBe('allow');
    } else if (c.expect === 'deny') {
      expect(outcome.kind, evidence).toBe('deny');
      if (door !== 'socks5' && door !== 'transparent-tls') {
        expect(outcome.reason, evidence).toBe(c.reason);
        expect(outcome.policy, evidence).toBe(reportPolicyIdFor.get(policyKey(c.row.policy)));
      }
      if (c.alert !== undefined) expect(outcome.alert, evidence).toBe(c.alert);
    } else {
      expect(outcome.kind, evidence).toBe('malformed');
    }
    if (door !== 'dns') expect(mine, evidence).toEqual(c.expect === 'malformed' ? {} : { [`${door}|${label(c)}|${c.reason}`]: 1 });
  });
});

describe("the doors of the table are the registry's", () => {
  it('every registry door that decides client-named destinations has a client here, and only those', () => {
    expect(DOORS.length).toBeGreaterThan(0);
    expect([...DOORS].sort()).toEqual((Object.keys(CLIENTS) as DoorName[]).sort());
  });
});

describe('rows a door cannot carry', () => {
  it.each(DOORS)("%s leaves rows out only for its protocol's reasons, and each reason still has a row", (door) => {
    const { skipped } = casesFor(door);
    for (const s of skipped)
      expect(
        (LEFT_OUT[door] ?? []).some((re) => re.test(s.why)),
        s.title,
      ).toBe(true);
    for (const re of LEFT_OUT[door] ?? [])
      expect(
        skipped.some((s) => re.test(s.why)),
        `no row left out for ${re}`,
      ).toBe(true);
  });
});

describe('/metrics after the table', () => {
  it.each(DOORS)('egress_decisions_total{door="%s"} counted every decision above, denials included', async (door) => {
    const want: Record<string, number> = {};
    for (const [k, n] of expectedCounts) if (k.startsWith(`${door}|`)) want[k] = n;
    const got = async () => Object.fromEntries(Object.entries(countsDelta(baseline, await decisionCounts(gw.apiUrl))).filter(([k]) => k.startsWith(`${door}|`)));
    // DNS batches its counts for up to a second.
    const deadline = Date.now() + 2500;
    let have = await got();
    while (JSON.stringify(Object.entries(have).sort()) !== JSON.stringify(Object.entries(want).sort()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      have = await got();
    }
    expect(have, JSON.stringify({ have, want })).toEqual(want);
    const denials = Object.entries(have)
      .filter(([k]) => k.startsWith(`${door}|deny|`))
      .reduce((a, [, n]) => a + n, 0);
    expect(denials).toBeGreaterThan(0);
  });
});

/**
 * Clients that skip IDNA put raw UTF-8 where HTTP, TLS and DNS expect ASCII. Whatever a door
 * makes of those bytes, it must never let them through.
 */
describe('raw UTF-8 names on the ASCII-only doors are never admitted', () => {
  const rows = HOSTNAME_CASES.filter((r) => !isAscii(r.host) && r.reason !== 'invalid_host');
  const cases = DOORS.filter((d) => d !== 'socks5').flatMap((door) => rows.map((row) => [`${door}: ${row.name} ${display(row.host)} sent as raw UTF-8 → refused`, door, row] as const));
  it.each(cases)('%s', async (_title, door, row) => {
    const c: DoorCase = { title: '', row, host: row.host, expect: 'deny', reason: null, publicDial: false };
    const outcome = await ask(door, c, { source: sourceFor.get(policyKey(row.policy))!, timeoutMs: TIMEOUT_MS });
    expect(['deny', 'malformed'], outcome.evidence).toContain(outcome.kind);
  });
});
