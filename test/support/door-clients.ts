/**
 * One small client per gateway door, each asking for a destination the way that door's
 * protocol names it and reporting what came back as a door-independent Outcome, so a
 * single case table can be run through every door and compared.
 *
 * Every client sends the host bytes as given (UTF-8), binds its source address (the
 * devbox is recognised by it), and gives up after a bounded time.
 *
 * SOCKS5 is spoken by hand rather than with the `socks` package: socks@2 picks the
 * address type with net.isIP (so "8.8.8.8" would go as ATYP IPv4, never as a domain)
 * and writes the JavaScript string length, not the UTF-8 byte length, as the domain
 * length (socksclient.js sendSocks5CommandRequest), so "bücher.de" would be framed
 * wrongly. Here every destination goes as ATYP 0x03 with its byte length.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';
import { clientHello } from '../fixtures/clienthello.js';

export type OutcomeKind =
  /** Reached the destination: the origin's body, or its TLS certificate. */
  | 'allow'
  /** Counted as allowed, and the client hung up before the dial to a public address finished. */
  | 'admitted'
  /** Admitted, but the destination could not be reached (502/504, SOCKS 0x03–0x06…). */
  | 'upstream'
  /** The door's policy denial: 403 + reason header, SOCKS 0x02, TLS access_denied, NXDOMAIN. */
  | 'deny'
  /** Refused before any decision as malformed input for the protocol (400, FORMERR, decode_error…). */
  | 'malformed'
  /** Anything else (time-out, silent close, unexpected status). */
  | 'other';

export interface Outcome {
  kind: OutcomeKind;
  /** The reason the door itself reported (header, EDE text), when it reports one. */
  reason?: string | null;
  /** TLS: the alert the door sent. */
  alert?: string;
  /** The policy the denial names (HTTP body "policy", DNS EDE text), when the door shows one. */
  policy?: string | null;
  /** What was seen, for failure messages. */
  evidence: string;
}

export interface ClientOptions {
  /** Source address (the devbox's registered address). */
  source: string;
  timeoutMs?: number;
  /** When this settles the client hangs up and reports 'admitted' (see OutcomeKind). */
  admitted?: Promise<unknown>;
}

const DEFAULT_TIMEOUT = 2500;

/** `host` as an authority host: a bare IPv6 literal needs brackets (RFC 3986 §3.2.2). */
export function authorityHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') && net.isIPv6(host) ? `[${host}]` : host;
}

function show(b: Buffer | string, max = 160): string {
  const s = typeof b === 'string' ? b : b.toString('latin1');
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

// ── raw TCP exchange ──────────────────────────────────────────────────────────

interface Exchange {
  /** Everything received. */
  received: Buffer;
  /** Why the exchange ended. */
  end: 'closed' | 'timeout' | 'admitted' | 'done' | 'error';
  error?: string;
}

/**
 * Opens a TCP connection from `source`, then runs `talk`, which writes and is fed every
 * chunk received; it returns true when it has seen enough.
 */
function exchange(port: number, opts: ClientOptions, start: (sock: net.Socket) => void, enough: (received: Buffer, sock: net.Socket) => boolean): Promise<Exchange> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let done = false;
    const sock = net.connect({ host: '127.0.0.1', port, localAddress: opts.source });
    const finish = (end: Exchange['end'], error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ received: Buffer.concat(got), end, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? DEFAULT_TIMEOUT);
    opts.admitted?.then(
      () => finish('admitted'),
      () => {},
    );
    sock.on('connect', () => start(sock));
    sock.on('data', (d: Buffer) => {
      got.push(d);
      if (enough(Buffer.concat(got), sock)) finish('done');
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish('error', e.code ?? e.message));
    sock.on('close', () => finish('closed'));
  });
}

interface HttpResponse {
  status: number;
  head: string;
  body: Buffer;
}

/** The first complete HTTP response in `raw` (Content-Length framed), or null. */
function parseResponse(raw: Buffer): HttpResponse | null {
  const sep = raw.indexOf('\r\n\r\n');
  if (sep < 0) return null;
  const head = raw.subarray(0, sep).toString('latin1');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  const len = /^content-length:\s*(\d+)\s*$/im.exec(head);
  const body = raw.subarray(sep + 4);
  if (len && body.length < Number(len[1])) return null;
  return { status, head, body: len ? body.subarray(0, Number(len[1])) : body };
}

function header(head: string, name: string): string | null {
  return new RegExp(`^${name}:\\s*(.*?)\\s*$`, 'im').exec(head)?.[1] ?? null;
}

/** Classifies an HTTP answer from the gateway (or, after a tunnel, from the origin). */
function httpOutcome(x: Exchange, what: string): Outcome {
  if (x.end === 'admitted') return { kind: 'admitted', evidence: `${what}: hung up after the allow was counted; got ${show(x.received)}` };
  const r = parseResponse(x.received);
  if (r === null) return { kind: 'other', evidence: `${what}: no complete HTTP response (${x.end}${x.error ? ` ${x.error}` : ''}): ${show(x.received)}` };
  const evidence = `${what}: ${show(r.head.split('\r\n')[0] ?? '')} ${show(r.body, 120)}`;
  if (r.status === 403) {
    let policy: string | null = null;
    try {
      policy = (JSON.parse(r.body.toString('utf8')) as { policy?: string | null }).policy ?? null;
    } catch {
      /* not the gateway's JSON denial */
    }
    return { kind: 'deny', reason: header(r.head, 'X-Egress-Denied-Reason'), policy, evidence };
  }
  if (r.status === 400 || r.status === 405 || r.status === 414 || r.status === 431) return { kind: 'malformed', evidence };
  if (r.status === 502 || r.status === 504) return { kind: 'upstream', evidence };
  // The test origin answers every request with a JSON echo of what it received.
  if (r.status === 200 && /"method":"GET"/.test(r.body.toString('latin1'))) return { kind: 'allow', evidence };
  return { kind: 'other', evidence };
}

const enoughHttp = (raw: Buffer) => parseResponse(raw) !== null;

// ── HTTP proxy: absolute-form GET ─────────────────────────────────────────────

/** `GET http://HOST:PORT/` through the HTTP proxy, with a Host header that agrees. */
export async function httpProxyGet(proxyPort: number, host: string, destPort: number, opts: ClientOptions): Promise<Outcome> {
  const authority = `${authorityHost(host)}:${destPort}`;
  const req = Buffer.from(`GET http://${authority}/ HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`, 'utf8');
  const x = await exchange(proxyPort, opts, (s) => s.write(req), enoughHttp);
  return httpOutcome(x, 'GET');
}

// ── CONNECT ───────────────────────────────────────────────────────────────────

/** `CONNECT HOST:PORT`; on 200, a GET through the tunnel to the (HTTP) origin behind it. */
export async function connectThenGet(proxyPort: number, host: string, destPort: number, opts: ClientOptions): Promise<Outcome> {
  const authority = `${authorityHost(host)}:${destPort}`;
  let established = false;
  let tunnelStart = 0;
  const x = await exchange(
    proxyPort,
    opts,
    (s) => s.write(Buffer.from(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`, 'utf8')),
    (raw, s) => {
      if (!established) {
        const sep = raw.indexOf('\r\n\r\n');
        if (sep < 0) return false;
        if (!/^HTTP\/1\.[01] 200/.test(raw.toString('latin1'))) return enoughHttp(raw);
        established = true;
        tunnelStart = sep + 4;
        s.write('GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n');
      }
      return enoughHttp(raw.subarray(tunnelStart));
    },
  );
  if (!established) return httpOutcome(x, 'CONNECT');
  if (x.end === 'admitted') return { kind: 'admitted', evidence: `CONNECT: 200, then hung up after the allow was counted` };
  const inner = httpOutcome({ ...x, received: x.received.subarray(tunnelStart) }, 'CONNECT 200, then GET through the tunnel');
  return inner.kind === 'allow' ? inner : { kind: 'other', evidence: inner.evidence };
}

// ── SOCKS5 ────────────────────────────────────────────────────────────────────

const SOCKS_REPLY: Record<number, string> = {
  0: 'succeeded',
  1: 'general failure',
  2: 'not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

/** No-auth greeting, CONNECT with ATYP domain (0x03); on success, a GET to the origin behind it. */
export async function socks5ConnectThenGet(socksPort: number, host: string, destPort: number, opts: ClientOptions): Promise<Outcome> {
  const name = Buffer.from(host, 'utf8');
  if (name.length > 255) throw new Error(`a SOCKS5 domain is at most 255 bytes (got ${name.length})`);
  const request = Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([destPort >> 8, destPort & 0xff])]);
  let phase: 'method' | 'reply' | 'tunnel' = 'method';
  let at = 0;
  let reply = -1;
  const x = await exchange(
    socksPort,
    opts,
    (s) => s.write(Buffer.from([5, 1, 0])),
    (raw, s) => {
      if (phase === 'method') {
        if (raw.length < 2) return false;
        if (raw[0] !== 5 || raw[1] !== 0) return true;
        phase = 'reply';
        at = 2;
        s.write(request);
      }
      if (phase === 'reply') {
        // VER REP RSV ATYP BND.ADDR BND.PORT: 10 bytes for IPv4, 22 for IPv6.
        if (raw.length < at + 4) return false;
        reply = raw[at + 1]!;
        const len = raw[at + 3] === 4 ? 22 : raw[at + 3] === 3 ? 7 + (raw[at + 4] ?? 0) : 10;
        if (raw.length < at + len) return false;
        if (reply !== 0) return true;
        phase = 'tunnel';
        at += len;
        s.write('GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n');
      }
      return enoughHttp(raw.subarray(at));
    },
  );
  if (phase === 'method') {
    if (x.end === 'admitted') return { kind: 'admitted', evidence: 'SOCKS5: hung up during the greeting after the allow was counted' };
    return { kind: 'other', evidence: `SOCKS5 greeting answered ${show(x.received)} (${x.end})` };
  }
  if (phase === 'reply') {
    if (x.end === 'admitted') return { kind: 'admitted', evidence: `SOCKS5: hung up after the allow was counted; got ${show(x.received.subarray(at))}` };
    if (reply < 0) return { kind: 'other', evidence: `SOCKS5: no reply to CONNECT (${x.end}${x.error ? ` ${x.error}` : ''})` };
    const evidence = `SOCKS5 reply 0x0${reply.toString(16)} (${SOCKS_REPLY[reply] ?? '?'})`;
    if (reply === 2) return { kind: 'deny', reason: null, evidence };
    if (reply >= 3 && reply <= 6) return { kind: 'upstream', evidence };
    if (reply === 1 || reply === 7 || reply === 8) return { kind: 'malformed', evidence };
    return { kind: 'other', evidence };
  }
  if (x.end === 'admitted') return { kind: 'admitted', evidence: 'SOCKS5: 0x00, then hung up after the allow was counted' };
  const inner = httpOutcome({ ...x, received: x.received.subarray(at) }, 'SOCKS5 0x00, then GET through the tunnel');
  return inner.kind === 'allow' ? inner : { kind: 'other', evidence: inner.evidence };
}

// ── transparent HTTP ──────────────────────────────────────────────────────────

/** Origin-form `GET /` to the transparent HTTP listener with `Host: HOST`. */
export async function transparentHttpGet(port: number, host: string, opts: ClientOptions): Promise<Outcome> {
  const req = Buffer.from(`GET / HTTP/1.1\r\nHost: ${authorityHost(host)}\r\nConnection: close\r\n\r\n`, 'utf8');
  const x = await exchange(port, opts, (s) => s.write(req), enoughHttp);
  return httpOutcome(x, 'GET (transparent)');
}

// ── transparent TLS ───────────────────────────────────────────────────────────

const ALERTS: Record<number, string> = { 40: 'handshake_failure', 49: 'access_denied', 50: 'decode_error', 112: 'unrecognized_name' };

function tlsAlertOutcome(alert: string, evidence: string): Outcome {
  // access_denied: a denial; unrecognized_name: no usable name (the door counts invalid_host);
  // decode_error: a hello the door will not read; handshake_failure: the upstream dial failed.
  if (alert === 'access_denied' || alert === 'unrecognized_name') return { kind: 'deny', reason: null, alert, evidence };
  if (alert === 'decode_error') return { kind: 'malformed', alert, evidence };
  if (alert === 'handshake_failure') return { kind: 'upstream', alert, evidence };
  return { kind: 'other', alert, evidence };
}

/**
 * A real TLS handshake (node/OpenSSL) to the transparent TLS listener with SNI `servername`
 * (an empty servername sends no server_name extension at all).
 */
export function transparentTlsHandshake(port: number, servername: string, opts: ClientOptions & { expectSubjectCN: string }): Promise<Outcome> {
  return new Promise((resolve) => {
    let done = false;
    let sock: tls.TLSSocket | undefined;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock?.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ kind: 'other', evidence: 'TLS: no handshake and no alert before the time-out' }), opts.timeoutMs ?? DEFAULT_TIMEOUT);
    // localAddress reaches net.connect at run time; @types/node leaves it out of tls.ConnectionOptions.
    sock = tls.connect({ host: '127.0.0.1', port, localAddress: opts.source, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] } as tls.ConnectionOptions);
    sock.on('secureConnect', () => {
      const cn = sock!.getPeerCertificate()?.subject?.CN;
      const cert = Array.isArray(cn) ? cn.join(',') : cn;
      finish(cert === opts.expectSubjectCN ? { kind: 'allow', evidence: `TLS: handshake completed with the origin's certificate (CN=${cert})` } : { kind: 'other', evidence: `TLS: handshake completed with an unexpected certificate (CN=${cert})` });
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const m = /alert number (\d+)/.exec(e.message);
      const evidence = `TLS: ${e.code ?? ''} ${e.message.split('\n')[0]}`;
      if (m) finish(tlsAlertOutcome(ALERTS[Number(m[1])] ?? `alert ${m[1]}`, evidence));
      else finish({ kind: 'other', evidence });
    });
    sock.on('close', () => finish({ kind: 'other', evidence: 'TLS: closed without an alert' }));
  });
}

/**
 * A hand-made ClientHello carrying exactly `name` (UTF-8 bytes) as its server_name, for
 * names OpenSSL would alter (it cuts at NUL and drops names over 255 bytes). Reads the
 * door's answer: an alert, or the origin's bytes if the hello was let through.
 */
export async function transparentTlsRawHello(port: number, name: string, opts: ClientOptions): Promise<Outcome> {
  const hello = clientHello({ names: [{ type: 0, name: Buffer.from(name, 'utf8') }] });
  const x = await exchange(
    port,
    opts,
    (s) => s.write(hello),
    (raw) => raw.length >= 7,
  );
  const r = x.received;
  if (r.length >= 7 && r[0] === 0x15 && r[5] === 2) {
    const alert = ALERTS[r[6]!] ?? `alert ${r[6]}`;
    return tlsAlertOutcome(alert, `TLS (raw ClientHello): fatal alert ${alert}`);
  }
  return { kind: 'other', evidence: `TLS (raw ClientHello): ${x.end}, got ${r.subarray(0, 16).toString('hex')}` };
}

// ── DNS ───────────────────────────────────────────────────────────────────────

export type WireName =
  | { ok: true; wire: Buffer }
  /** Encodable, but not a valid DNS name: a label over 63 octets, or over 255 octets in all. */
  | { ok: false; wire: Buffer; why: string }
  /** Cannot be put in a question at all (a zero-length label ends the name; a length is one octet). */
  | { ok: false; wire: null; why: string };

/** The wire form of `name`: each dot-separated label as its UTF-8 bytes, root-terminated. */
export function dnsWireName(name: string): WireName {
  const s = name.endsWith('.') ? name.slice(0, -1) : name;
  if (s === '') return { ok: true, wire: Buffer.from([0]) };
  const parts: Buffer[] = [];
  let why: string | null = null;
  for (const label of s.split('.')) {
    const b = Buffer.from(label, 'utf8');
    if (b.length === 0) return { ok: false, wire: null, why: 'an empty label would end the name early' };
    if (b.length > 255) return { ok: false, wire: null, why: `a ${b.length}-octet label has no length octet` };
    if (b.length > 63) why ??= `a ${b.length}-octet label (at most 63)`;
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  const wire = Buffer.concat(parts);
  if (wire.length > 255) why ??= `${wire.length} octets (at most 255)`;
  return why === null ? { ok: true, wire } : { ok: false, wire, why };
}

/** A standard query (A, RD, with an EDNS OPT so denials carry EDE) for a wire name. */
export function dnsQuery(wireName: Buffer, id: number): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2); // RD
  head.writeUInt16BE(1, 4); // QDCOUNT
  head.writeUInt16BE(1, 10); // ARCOUNT: the OPT
  const question = Buffer.from([0, 1, 0, 1]); // A, IN
  const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]); // root, OPT, 1232, no flags, no options
  return Buffer.concat([head, wireName, question, opt]);
}

function edeOf(p: dnsPacket.Packet): { code: number; text: string } | null {
  for (const a of p.additionals ?? []) {
    if ((a as { type: string }).type !== 'OPT') continue;
    for (const o of (a as unknown as { options?: Array<{ code: number; data?: Buffer }> }).options ?? []) {
      if (o.code === 15 && o.data && o.data.length >= 2) return { code: o.data.readUInt16BE(0), text: o.data.subarray(2).toString('utf8') };
    }
  }
  return null;
}

/** One UDP query from `source` to the DNS door. */
export function dnsAsk(port: number, wireName: Buffer, opts: ClientOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const id = Math.floor(Math.random() * 65536);
    const s = dgram.createSocket('udp4');
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.close();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ kind: 'other', evidence: 'DNS: no answer before the time-out' }), opts.timeoutMs ?? DEFAULT_TIMEOUT);
    s.on('error', (e) => finish({ kind: 'other', evidence: `DNS: socket error ${e.message}` }));
    s.on('message', (m: Buffer) => {
      if (m.length < 12 || m.readUInt16BE(0) !== id) return;
      let p: dnsPacket.Packet & { rcode?: string };
      try {
        p = dnsPacket.decode(m) as dnsPacket.Packet & { rcode?: string };
      } catch {
        // dns-packet cannot decode some names; the header is enough for the rcode.
        const rcode = m[3]! & 0x0f;
        finish(rcode === 1 ? { kind: 'malformed', evidence: 'DNS: FORMERR' } : { kind: 'other', evidence: `DNS: undecodable reply, rcode ${rcode}: ${m.toString('hex').slice(0, 120)}` });
        return;
      }
      const ede = edeOf(p);
      const answers = (p.answers ?? []).filter((a) => a.type === 'A').map((a) => String((a as { data?: unknown }).data));
      const evidence = `DNS: ${p.rcode} answers=${JSON.stringify(answers)} ede=${ede ? `${ede.code} ${JSON.stringify(ede.text)}` : 'none'}`;
      if (p.rcode === 'NOERROR' && answers.length > 0) return finish({ kind: 'allow', evidence });
      if (p.rcode === 'NXDOMAIN' || p.rcode === 'REFUSED') {
        // "blocked by egress policy <id> (<reason>)" or "(<reason>: <detail>)"
        const m = ede?.code === 15 ? /egress policy (\S+) \(([a-z_]+)(?:: .*)?\)\s*$/.exec(ede.text) : null;
        const policy = m ? (m[1] === '(none)' ? null : m[1]!) : null;
        return finish({ kind: ede?.code === 15 ? 'deny' : 'other', reason: m?.[2] ?? null, policy, evidence });
      }
      if (p.rcode === 'FORMERR') return finish({ kind: 'malformed', evidence });
      finish({ kind: 'other', evidence });
    });
    s.bind(0, opts.source, () => s.send(dnsQuery(wireName, id), port, '127.0.0.1'));
  });
}

// ── metrics ───────────────────────────────────────────────────────────────────

/** egress_decisions_total as `door|decision|reason` → count. */
export async function decisionCounts(apiUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('egress_decisions_total{')) continue;
    const m = /^egress_decisions_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const l: Record<string, string> = {};
    for (const kv of m[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) l[kv[1]!] = kv[2]!;
    const key = `${l.door}|${l.decision}|${l.reason}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[2]));
  }
  return out;
}

/** What changed between two decisionCounts() snapshots (only keys that grew). */
export function countsDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}
