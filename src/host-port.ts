/** A listen or dial address: an IP literal (or localhost) and a port, as settings give them. */
import { isIP } from 'node:net';
import { ConfigError } from './config-error.js';

export interface HostPort {
  host: string;
  port: number;
}

/** HOST:PORT or [IPv6]:PORT; a wrong value is a ConfigError naming `setting`. */
export function parseHostPort(setting: string, text: string): HostPort {
  const s = text.trim();
  let host: string;
  let portText: string;
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2]!;
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) throw new ConfigError(setting, `"${text}" is not HOST:PORT`);
    host = s.slice(0, i);
    portText = s.slice(i + 1);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new ConfigError(setting, `"${text}" has a bad port`);
  if (isIP(host) === 0 && host !== 'localhost') throw new ConfigError(setting, `"${text}": host must be an IP address or localhost`);
  return { host, port: Number(portText) };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
