/**
 * `egress-gateway check --policy npol_…|FILE [--devbox dbx_…] HOST[:PORT] [--json]`
 *
 * Explains the decision the gateway makes for a destination, with the same engine the
 * doors use: allow/deny, reason, the entry that matched, policy id and version. Reads the
 * store file (`--db`, or the usual config) read-side; `--policy` may also name a policy
 * file (JSON/YAML, as `apply` reads), which is checked without any store.
 * Exit code: 0 allow, 1 deny, 2 usage error.
 */
import { existsSync } from 'node:fs';
import { loadConfig } from '../config.js';
import { PolicyEngine } from '../policy/engine.js';
import { engineOptions } from '../config.js';
import { type Decision, decisionLabel } from '../policy/decision.js';
import type { PolicySource } from '../policy/source.js';
import { MemorySource } from '../policy/memory-source.js';
import { Guardrails } from '../policy/guardrails.js';
import { cidrWarnings } from '../policy/validate.js';
import { loadPolicyFile, POLICY_EXTENSIONS, PolicyFileError } from './policy-file.js';

export class UsageError extends Error {}

/** Splits `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address. */
export function parseDestination(text: string): { host: string; port: number } {
  const parsePort = (p: string) => {
    if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw new UsageError(`"${text}": port must be 1-65535`);
    return Number(p);
  };
  const bracket = /^(\[[^\]]*\])(?::(.*))?$/.exec(text);
  if (bracket) return { host: bracket[1]!, port: bracket[2] === undefined ? 443 : parsePort(bracket[2]) };
  const colons = text.split(':').length - 1;
  if (colons === 1) {
    const i = text.lastIndexOf(':');
    return { host: text.slice(0, i), port: parsePort(text.slice(i + 1)) };
  }
  return { host: text, port: 443 }; // a name, or an unbracketed IPv6 literal
}

export function formatDecision(d: Decision, port: number): string {
  const version = d.policyVersion === null ? '' : ` v${d.policyVersion}`;
  return [decisionLabel(d).padEnd(10), d.reason.padEnd(16), `matched=${d.matched ?? '-'}`, `policy=${d.policyId ?? '(default: deny all)'}${version}`, `host=${d.host.includes(':') ? `[${d.host}]` : d.host}:${port}`].join('  ');
}

function isPolicyFile(v: string): boolean {
  return !v.startsWith('npol_') && POLICY_EXTENSIONS.some((x) => v.toLowerCase().endsWith(x));
}

export async function checkCommand(flags: Map<string, string[]>, positional: string[]): Promise<void> {
  try {
    process.exitCode = await runCheck(flags, positional);
  } catch (e) {
    if (e instanceof UsageError || e instanceof PolicyFileError) {
      process.stderr.write(`egress-gateway check: ${e.message}\n`);
      process.stderr.write('usage: egress-gateway check --policy npol_…|FILE [--devbox dbx_…] HOST[:PORT] [--json] [--db PATH]\n');
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

async function runCheck(flags: Map<string, string[]>, positional: string[]): Promise<number> {
  if (positional.length !== 1) throw new UsageError(positional.length === 0 ? 'give one destination HOST[:PORT]' : `give one destination, not ${positional.length}`);
  const { host, port } = parseDestination(positional[0]!);
  const policyArg = flags.get('policy')?.at(-1) ?? null;
  const devboxArg = flags.get('devbox')?.at(-1) ?? null;
  if (policyArg === null && devboxArg === null) throw new UsageError('give --policy npol_… (or a policy file), or --devbox dbx_…');
  const config = loadConfig(flags);
  const opts = engineOptions(config);

  let source: PolicySource;
  let closeSource: () => void | Promise<void> = () => {};
  let policyId: string | null;
  if (policyArg !== null && isPolicyFile(policyArg)) {
    if (devboxArg !== null) throw new UsageError('--devbox needs the store; it cannot be combined with a policy file');
    const spec = loadPolicyFile(policyArg);
    const mem = new MemorySource();
    const { name, description, enforcement, ...egress } = spec;
    policyId = mem.putPolicy({ id: `file:${policyArg}`, name, description, egress, enforcement }).id;
    source = mem;
    for (const w of cidrWarnings(egress.allowed_cidrs, new Guardrails(opts.allowPrivate))) process.stderr.write(`warning: ${policyArg}: ${w}\n`);
  } else {
    const { isPostgresUrl } = await import('../store/backend.js');
    if (!isPostgresUrl(config.db) && !existsSync(config.db)) throw new UsageError(`no store at ${config.db} (give --db PATH, or a policy file to --policy)`);
    const { openPlaneStore } = await import('../store/open.js'); // not needed for a policy file
    const plane = await openPlaneStore(config.db, { connections: 1, pollMs: 3_600_000 });
    source = plane.source;
    closeSource = () => plane.close();
    policyId = policyArg;
  }
  try {
    const engine = new PolicyEngine(source, opts);
    let d: Decision;
    if (devboxArg !== null) {
      const devbox = source.getDevbox(devboxArg);
      if (!devbox) throw new UsageError(`devbox ${devboxArg} does not exist`);
      if (policyId !== null && policyId !== devbox.network_policy_id) {
        process.stderr.write(`note: devbox ${devboxArg} is attached to ${devbox.network_policy_id ?? 'no policy'}; judging under ${policyId} as asked\n`);
      }
      d = devbox.status === 'running' && policyId === null ? engine.decide({ devboxId: devbox.id, via: 'credentials', source: '' }, host, port) : engine.decideForPolicy(policyId ?? devbox.network_policy_id, host, port, 'TCP', devbox.id);
    } else {
      d = engine.decideForPolicy(policyId, host, port, 'TCP');
    }
    engine.close();
    if (flags.has('json')) {
      process.stdout.write(`${JSON.stringify({ decision: decisionLabel(d), reason: d.reason, matched: d.matched, host: d.host, port, network_policy_id: d.policyId, policy_version: d.policyVersion })}\n`);
    } else {
      process.stdout.write(`${formatDecision(d, port)}\n`);
      if (d.wouldDeny === true) process.stdout.write('  (the policy is report-only: the doors let this through, counted and logged as would_deny)\n');
      if (d.allow && d.hostKind === 'name') process.stdout.write('  (at connection time the resolved address must also pass the private-address guardrail)\n');
    }
    return d.allow ? 0 : 1;
  } finally {
    await closeSource();
  }
}
