/** The `host:port` authority of a CONNECT line, a proxy request's URL or Host header. */

export interface Authority {
  host: string;
  port: number;
}

/**
 * `host:port`, `[v6]:port` (port required unless defaultPort is given). The host comes back
 * without brackets. Null when malformed.
 */
export function parseAuthority(text: string, defaultPort: number | null): Authority | null {
  if (text.length === 0 || text.length > 1100) return null;
  let host: string;
  let portText: string | null = null;
  if (text.charCodeAt(0) === 91 /* [ */) {
    const close = text.indexOf(']');
    if (close < 0) return null;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest.length > 0) {
      if (rest.charCodeAt(0) !== 58 /* : */) return null;
      portText = rest.slice(1);
    }
    if (!host.includes(':')) return null;
  } else {
    const i = text.lastIndexOf(':');
    if (i >= 0) {
      if (text.indexOf(':') !== i) return null; // bare IPv6 without brackets is ambiguous
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    } else host = text;
  }
  if (host.length === 0) return null;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 64 /* @ */ || c === 47 /* / */ || c === 92 /* \ */ || c === 63 /* ? */ || c === 35 /* # */) return null;
  }
  let port: number;
  if (portText === null || portText === '') {
    if (defaultPort === null) return null;
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) return null;
    port = Number(portText);
  }
  if (port < 1 || port > 65535) return null;
  return { host, port };
}
