/**
 * Hop-by-hop header filtering (RFC 9110 §7.6.1): what the HTTP doors never pass on, in
 * either direction, whichever path (raw front or node:http) forwards the request.
 */
/** Request headers never forwarded (RFC 9110 §7.6.1 plus proxy-only ones). Lower-case. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);

/** Names listed in Connection headers (they are hop-by-hop too). */
function connectionTokens(raw: string[]): Set<string> | null {
  let out: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10 && name.length !== 16) continue;
    const lower = name.toLowerCase();
    if (lower !== 'connection' && lower !== 'proxy-connection') continue;
    for (const t of raw[i + 1]!.split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok === '' || tok === 'close' || tok === 'keep-alive' || tok === 'upgrade') continue;
      (out ??= new Set()).add(tok);
    }
  }
  return out;
}

/**
 * Copies raw headers without the hop-by-hop ones. `keepUpgrade` keeps Connection: Upgrade
 * and Upgrade (for an upgrade request). `host` replaces the Host header when given.
 */
export function filterHeaders(raw: string[], keepUpgrade = false): string[] {
  const listed = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (!(keepUpgrade && lower === 'upgrade')) continue;
    }
    if (listed !== null && listed.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  if (keepUpgrade) out.push('Connection', 'Upgrade');
  return out;
}

export function hasHost(raw: string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') return true;
  return false;
}

/** A request head for the origin: `method path HTTP/1.1`, the given headers, then `last` (header lines ending in CRLF). */
export function requestHeadText(method: string, path: string, headers: string[], last: string): string {
  let text = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}${last}\r\n`;
}
