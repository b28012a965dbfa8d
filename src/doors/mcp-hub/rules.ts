/**
 * The MCP hub's tool rules for one MCP config: tools are exposed as `<service>.<tool>` (service:
 * the config name's first segment before `-`), and only those one of the config's
 * `allowed_tools` globs (picomatch) matches are listed or callable: a glob that starts with
 * `<service>.` is matched against the exposed name, any other against the upstream name. A name a devbox sends is
 * taken only exactly as the hub exposes it: a string already in Unicode NFKC form, in the MCP
 * tool-name alphabet (ASCII letters, digits, `_`, `-`, `.`), 1–128 characters, with the service
 * prefix; anything else (look-alike letters, full-width forms, the unprefixed upstream name) is
 * refused before any glob is asked.
 */
import picomatch from 'picomatch';

/** MCP's tool-name alphabet (specification 2025-11-25, "Tool names"). */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

export type ToolVerdict = { ok: true; upstream: string; exposed: string } | { ok: false; why: string };

export function serviceOf(configName: string): string {
  const dash = configName.indexOf('-');
  return dash < 0 ? configName : configName.slice(0, dash);
}

/** Printable ASCII kept, everything else as \\uXXXX: a refused name is safe to log and record. */
export function printable(name: string, max = 160): string {
  let out = '';
  for (const ch of name.slice(0, max)) {
    const c = ch.codePointAt(0)!;
    out += c >= 0x20 && c < 0x7f ? ch : `\\u{${c.toString(16)}}`;
  }
  return out;
}

export class ToolRules {
  readonly service: string;
  private readonly match: (s: string) => boolean;

  constructor(configName: string, allowed: readonly string[]) {
    this.service = serviceOf(configName);
    // A glob naming the service (`github.search_*`) is matched against the exposed name; any
    // other (`search_*`, `*`) against the upstream tool's own name.
    const prefix = `${this.service}.`;
    const compile = (g: string) => picomatch(g, { dot: true, noextglob: true });
    const exposed = allowed.filter((g) => g.startsWith(prefix)).map(compile);
    const bare = allowed.filter((g) => !g.startsWith(prefix)).map(compile);
    this.match = (upstream) => bare.some((m) => m(upstream)) || exposed.some((m) => m(prefix + upstream));
  }

  /** The name a devbox sees for an upstream tool, or null when the tool is not exposed. */
  exposed(upstream: unknown): string | null {
    if (typeof upstream !== 'string' || !TOOL_NAME.test(upstream)) return null;
    return this.match(upstream) ? `${this.service}.${upstream}` : null;
  }

  /** The upstream tool a devbox's `tools/call` name stands for, or why it is refused. */
  call(name: unknown): ToolVerdict {
    if (typeof name !== 'string') return { ok: false, why: 'the tool name is not a string' };
    if (name.normalize('NFKC') !== name) return { ok: false, why: 'the tool name is not in Unicode NFKC form' };
    const prefix = `${this.service}.`;
    if (!name.startsWith(prefix)) return { ok: false, why: `tools are called as ${prefix}<tool>` };
    const upstream = name.slice(prefix.length);
    if (!TOOL_NAME.test(upstream)) return { ok: false, why: 'the tool name has characters outside A-Z a-z 0-9 _ - .' };
    if (!this.match(upstream)) return { ok: false, why: "the tool is not in the MCP config's allowed_tools" };
    return { ok: true, upstream, exposed: name };
  }
}

/** Rules per config, made once per (name, allowed_tools) and kept while the config stays the same. */
const cache = new Map<string, { key: string; rules: ToolRules }>();

export function rulesFor(config: { id: string; name: string; allowed_tools: readonly string[] }): ToolRules {
  const key = `${config.name}\u0000${config.allowed_tools.join('\u0000')}`;
  const hit = cache.get(config.id);
  if (hit !== undefined && hit.key === key) return hit.rules;
  if (cache.size > 10_000) cache.clear();
  const rules = new ToolRules(config.name, config.allowed_tools);
  cache.set(config.id, { key, rules });
  return rules;
}
