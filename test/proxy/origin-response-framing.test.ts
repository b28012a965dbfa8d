/**
 * Threat: the HTTP proxy's raw front (http-front.ts) relays origin responses as they come,
 * following their framing itself and keeping origin connections in a keep-alive pool. A
 * hostile or broken origin must not be able to desync it: bytes past a response's framing
 * must never reach the client as (part of) the next response, a broken body must reach the
 * client as broken (cut), not as complete, and a pooled connection that went stale must not
 * cost the client its request. Every case here talks to a raw TCP origin that writes exact
 * bytes, through the real gateway, over raw client sockets from devbox A (127.0.0.2).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { type ProxyEnv, sleep, startProxyEnv, until } from '../support/proxy.js';

// ── a raw origin ─────────────────────────────────────────────────────────────────

interface OriginRequest {
  /** 1-based number of the origin connection the request came on. */
  conn: number;
  /** 0-based index of the request on its connection. */
  index: number;
  method: string;
  path: string;
  head: string;
  sock: net.Socket;
}

interface RawOrigin {
  port: number;
  requests: OriginRequest[];
  /** Connections accepted so far. */
  connections(): number;
  /** Connection numbers the gateway (or the origin) has closed. */
  closed: Set<number>;
  close(): Promise<void>;
}

/** A TCP origin on 127.0.0.1 that reads request heads (no bodies) and lets `answer` write exact bytes. */
async function rawOrigin(answer: (r: OriginRequest) => void): Promise<RawOrigin> {
  const requests: OriginRequest[] = [];
  const sockets = new Set<net.Socket>();
  const closed = new Set<number>();
  let conns = 0;
  const server = net.createServer((sock) => {
    const conn = ++conns;
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => {
      sockets.delete(sock);
      closed.add(conn);
    });
    let buf = Buffer.alloc(0);
    let index = 0;
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        buf = buf.subarray(end + 4);
        const [method = '', path = ''] = head.split('\r\n')[0]!.split(' ');
        const r: OriginRequest = { conn, index: index++, method, path, head, sock };
        requests.push(r);
        answer(r);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    requests,
    closed,
    connections: () => conns,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

// ── a raw client ─────────────────────────────────────────────────────────────────

interface Response {
  status: number;
  head: string;
  /** Lower-case name → values. */
  headers: Map<string, string[]>;
  /** The body as a client decodes it (chunked framing removed). */
  body: Buffer;
  /** The body bytes exactly as received (chunked framing included). */
  raw: Buffer;
  /** Trailer lines of a chunked body. */
  trailers: string;
  /** False if the connection closed before the framing said the body was over. */
  complete: boolean;
}

function headersOf(head: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).toLowerCase();
    out.set(name, [...(out.get(name) ?? []), line.slice(i + 1).trim()]);
  }
  return out;
}

/** A chunked body at buf[from…]: its end, decoded bytes and trailers; null while incomplete. */
function decodeChunked(buf: Buffer, from: number): { end: number; body: Buffer; trailers: string } | null {
  const parts: Buffer[] = [];
  let i = from;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) return null;
    const sizeText = buf.toString('latin1', i, eol).split(';')[0]!.trim();
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`client: bad chunk size ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    i = eol + 2;
    if (size === 0) {
      if (buf.length < i + 2) return null;
      if (buf[i] === 13 && buf[i + 1] === 10) return { end: i + 2, body: Buffer.concat(parts), trailers: '' };
      const t = buf.indexOf('\r\n\r\n', i);
      if (t < 0) return null;
      return { end: t + 4, body: Buffer.concat(parts), trailers: buf.toString('latin1', i, t) };
    }
    if (buf.length < i + size + 2) return null;
    parts.push(buf.subarray(i, i + size));
    if (buf[i + size] !== 13 || buf[i + size + 1] !== 10) throw new Error('client: no CRLF after chunk data');
    i += size + 2;
  }
}

class Client {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  /** The gateway ended or closed the connection. */
  eof = false;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    const gone = () => {
      this.eof = true;
      this.wake();
    };
    sock.on('end', gone);
    sock.on('close', gone);
    sock.on('error', gone);
  }

  static open(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new Client(sock));
      });
      sock.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits for more bytes or the end; false once `deadline` passed. */
  private async more(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>((r) => {
      const t = setTimeout(r, left);
      this.waiters.push(() => {
        clearTimeout(t);
        r();
      });
    });
    return true;
  }

  send(text: string | Buffer): void {
    this.sock.write(text);
  }

  /** Every byte received and not yet taken by response(). */
  pending(): Buffer {
    return this.buf;
  }

  /** Received bytes so far (not consumed), as text. */
  text(): string {
    return this.buf.toString('latin1');
  }

  /** Waits until the unconsumed bytes contain `s`. */
  async waitFor(s: string, timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.buf.includes(s)) if (this.eof || !(await this.more(deadline))) return this.buf.includes(s);
    return true;
  }

  /** Reads one response off the connection, framed as a client would frame it. */
  async response(method = 'GET', timeoutMs = 3000): Promise<Response> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.tryParse(method);
      if (r !== null) return r;
      if (!(await this.more(deadline))) throw new Error(`client: no complete response within ${timeoutMs} ms; got ${JSON.stringify(this.text().slice(0, 300))}`);
    }
  }

  private tryParse(method: string): Response | null {
    const buf = this.buf;
    const h = buf.indexOf('\r\n\r\n');
    if (h < 0) {
      if (this.eof) throw new Error(`client: connection closed without a response head; got ${JSON.stringify(this.text().slice(0, 300))}`);
      return null;
    }
    const head = buf.toString('latin1', 0, h);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
    const headers = headersOf(head);
    const start = h + 4;
    const done = (end: number, body: Buffer, trailers = '', complete = true): Response => {
      this.buf = buf.subarray(end);
      return { status, head, headers, body, raw: buf.subarray(start, end), trailers, complete };
    };
    if (method === 'HEAD' || status === 204 || status === 304 || status < 200) return done(start, Buffer.alloc(0));
    if (/chunked/i.test(headers.get('transfer-encoding')?.join(',') ?? '')) {
      const c = decodeChunked(buf, start);
      if (c !== null) return done(c.end, c.body, c.trailers);
      return this.eof ? done(buf.length, buf.subarray(start), '', false) : null;
    }
    const cl = headers.get('content-length');
    if (cl !== undefined) {
      const n = Number(cl[0]);
      if (buf.length >= start + n) return done(start + n, buf.subarray(start, start + n));
      return this.eof ? done(buf.length, buf.subarray(start), '', false) : null;
    }
    // Until the connection closes.
    return this.eof ? done(buf.length, buf.subarray(start)) : null;
  }

  /** True once the gateway has ended/closed the connection (within `ms`). */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.eof) if (!(await this.more(deadline))) return this.eof;
    return true;
  }

  destroy(): void {
    this.sock.destroy();
  }
}

// ── set-up ───────────────────────────────────────────────────────────────────────

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function origin(answer: (r: OriginRequest) => void): Promise<RawOrigin> {
  const o = await rawOrigin(answer);
  cleanups.push(() => o.close());
  return o;
}

async function client(port = env.proxyPort): Promise<Client> {
  const c = await Client.open(port);
  cleanups.push(() => c.destroy());
  return c;
}

/** An absolute-form request for allowed.test:port. */
function get(port: number, path: string, opts: { method?: string; extra?: string; host?: string } = {}): string {
  const host = `${opts.host ?? 'allowed.test'}:${port}`;
  return `${opts.method ?? 'GET'} http://${host}${path} HTTP/1.1\r\nHost: ${host}\r\n${opts.extra ?? ''}\r\n`;
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

// ── the cases ────────────────────────────────────────────────────────────────────

describe('origin response framing through the HTTP proxy front', () => {
  it('1. a chunked response (several chunks, extensions, a trailer) is relayed as it comes, byte-intact; keep-alive and pool reuse follow', async () => {
    const first = '5\r\nhello\r\n7;ext=1\r\n, world\r\n';
    const rest = `1A\r\n${'abcdefghijklmnopqrstuvwxyz'}\r\n3\r\n!\r\n\r\n0\r\nX-Checksum: abc123\r\n\r\n`;
    const release = deferred();
    const o = await origin((r) => {
      if (r.path === '/chunked') {
        r.sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n' + first);
        void release.promise.then(() => r.sock.write(rest));
      } else r.sock.write(ok('second'));
    });
    const c = await client();
    c.send(get(o.port, '/chunked'));
    // The first chunks reach the client before the origin has sent the rest.
    expect(await c.waitFor('7;ext=1\r\n, world\r\n')).toBe(true);
    release.resolve();
    const r1 = await c.response();
    expect(r1.status).toBe(200);
    expect(r1.headers.get('transfer-encoding')).toEqual(['chunked']);
    expect(r1.headers.has('content-length')).toBe(false);
    expect(r1.headers.get('connection')).toEqual(['keep-alive']);
    expect(r1.body.toString('latin1')).toBe('hello, worldabcdefghijklmnopqrstuvwxyz!\r\n');
    expect(r1.raw.toString('latin1')).toBe(first + rest); // not re-encoded
    expect(r1.trailers).toBe('X-Checksum: abc123');
    expect(r1.complete).toBe(true);

    c.send(get(o.port, '/second'));
    const r2 = await c.response();
    expect(r2.status).toBe(200);
    expect(r2.body.toString()).toBe('second');
    expect(c.eof).toBe(false);
    // Both requests went over the one origin connection (pooled, reused).
    expect(o.requests.map((r) => [r.conn, r.path])).toEqual([
      [1, '/chunked'],
      [1, '/second'],
    ]);
    expect(o.connections()).toBe(1);
  });

  it('2. a Content-Length response, then a second request on the same client connection', async () => {
    const o = await origin((r) => r.sock.write(r.path === '/a' ? ok('hello world', 'X-Origin: yes\r\n') : ok('bye')));
    const c = await client();
    c.send(get(o.port, '/a'));
    const r1 = await c.response();
    expect(r1.status).toBe(200);
    expect(r1.body.toString()).toBe('hello world');
    expect(r1.headers.get('content-length')).toEqual(['11']);
    expect(r1.headers.get('x-origin')).toEqual(['yes']);
    c.send(get(o.port, '/b'));
    const r2 = await c.response();
    expect(r2.body.toString()).toBe('bye');
    expect(c.pending().length).toBe(0);
    expect(o.requests.map((r) => r.conn)).toEqual([1, 1]);
  });

  it('3. a body read until the origin closes: the client gets it whole, with Connection: close, then the gateway closes the client connection', async () => {
    const o = await origin((r) => {
      r.sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart1-');
      setTimeout(() => r.sock.end('part2'), 30);
    });
    const c = await client();
    c.send(get(o.port, '/until-close'));
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.headers.get('connection')).toEqual(['close']);
    expect(r.headers.has('content-length')).toBe(false);
    expect(r.headers.has('transfer-encoding')).toBe(false);
    expect(r.body.toString()).toBe('part1-part2');
    expect(await c.closedWithin(2000)).toBe(true);
  });

  it('4. an origin sending both Content-Length and Transfer-Encoding: chunked: the client sees only chunked, and the next request is not desynced', async () => {
    const o = await origin((r) => {
      if (r.path === '/both') r.sock.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      else r.sock.write(ok('next'));
    });
    const c = await client();
    c.send(get(o.port, '/both'));
    const r1 = await c.response();
    expect(r1.status).toBe(200);
    expect(r1.headers.get('transfer-encoding')).toEqual(['chunked']);
    expect(r1.headers.has('content-length')).toBe(false);
    expect(r1.body.toString()).toBe('hello');
    c.send(get(o.port, '/next'));
    const r2 = await c.response();
    expect(r2.status).toBe(200);
    expect(r2.body.toString()).toBe('next');
    expect(c.pending().length).toBe(0);
  });

  it('8a. a pooled connection the origin closed while idle: the next request still succeeds', async () => {
    const o = await origin((r) => {
      r.sock.write(ok(`answer ${r.path}`));
      if (r.path === '/one') setTimeout(() => r.sock.destroy(), 20);
    });
    const c = await client();
    c.send(get(o.port, '/one'));
    expect((await c.response()).body.toString()).toBe('answer /one');
    expect(await until(() => o.closed.has(1))).toBe(true);
    await sleep(20);
    c.send(get(o.port, '/two'));
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('answer /two');
    expect(o.requests.at(-1)).toMatchObject({ conn: 2, path: '/two' });
  });

  it('8b. a pooled connection the origin closes on the next request without answering: retried once on a fresh connection', async () => {
    const o = await origin((r) => {
      if (r.conn === 1 && r.index === 1)
        r.sock.destroy(); // its keep-alive ran out just as the request came
      else r.sock.write(ok(`answer ${r.path} on ${r.conn}`));
    });
    const c = await client();
    c.send(get(o.port, '/one'));
    expect((await c.response()).body.toString()).toBe('answer /one on 1');
    c.send(get(o.port, '/two'));
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('answer /two on 2');
    expect(o.requests.map((q) => [q.conn, q.path])).toEqual([
      [1, '/one'],
      [1, '/two'],
      [2, '/two'],
    ]);
  });

  it('8c. the same for a DELETE: not replayed, 502', async () => {
    const o = await origin((r) => {
      if (r.conn === 1 && r.index === 1) r.sock.destroy();
      else r.sock.write(ok('done'));
    });
    const c = await client();
    c.send(get(o.port, '/one'));
    expect((await c.response()).status).toBe(200);
    c.send(get(o.port, '/thing', { method: 'DELETE' }));
    const r = await c.response();
    expect(r.status).toBe(502);
    expect(o.requests.filter((q) => q.method === 'DELETE')).toHaveLength(1);
  });

  it('9. HEAD: Content-Length relayed without a body, and the next request on the connection works', async () => {
    const o = await origin((r) => {
      if (r.method === 'HEAD') r.sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n');
      else r.sock.write(ok('after head'));
    });
    const c = await client();
    c.send(get(o.port, '/resource', { method: 'HEAD' }));
    const r1 = await c.response('HEAD');
    expect(r1.status).toBe(200);
    expect(r1.headers.get('content-length')).toEqual(['1234']);
    expect(c.pending().length).toBe(0);
    c.send(get(o.port, '/after'));
    const r2 = await c.response();
    expect(r2.body.toString()).toBe('after head');
    expect(c.pending().length).toBe(0);
    expect(o.requests.map((q) => [q.conn, q.method])).toEqual([
      [1, 'HEAD'],
      [1, 'GET'],
    ]);
  });

  it('9b. HEAD answered with Transfer-Encoding: chunked and no body: the next request works', async () => {
    const o = await origin((r) => {
      if (r.method === 'HEAD') r.sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      else r.sock.write(ok('after head'));
    });
    const c = await client();
    c.send(get(o.port, '/resource', { method: 'HEAD' }));
    const r1 = await c.response('HEAD');
    expect(r1.status).toBe(200);
    c.send(get(o.port, '/after'));
    expect((await c.response()).body.toString()).toBe('after head');
    expect(c.pending().length).toBe(0);
  });

  it('10. two pipelined requests in one packet: both answered, in order', async () => {
    const o = await origin((r) => {
      // The first answer is the slower one.
      if (r.path === '/p1') setTimeout(() => r.sock.write(ok('one')), 30);
      else r.sock.write(ok('two'));
    });
    const c = await client();
    c.send(get(o.port, '/p1') + get(o.port, '/p2'));
    const r1 = await c.response();
    const r2 = await c.response();
    expect([r1.status, r1.body.toString(), r2.status, r2.body.toString()]).toEqual([200, 'one', 200, 'two']);
    expect(o.requests.map((q) => q.path)).toEqual(['/p1', '/p2']);
  });

  it('10b. a request followed by the client half-closing (nothing pipelined): the client gave up, the request is cancelled and the connection closed', async () => {
    let upstreamClosed = false;
    const o = await origin((r) => {
      r.sock.once('close', () => (upstreamClosed = true));
      setTimeout(() => r.sock.write(ok('late')), 300);
    });
    const c = await client();
    c.send(get(o.port, '/half'));
    await until(() => o.requests.length === 1, 2000);
    c.sock.end();
    expect(await c.closedWithin(1000)).toBe(true);
    expect(await until(() => upstreamClosed, 1000)).toBe(true);
  });

  it('10c. two pipelined requests followed by the client half-closing: both answered', async () => {
    const o = await origin((r) => r.sock.write(ok(`answer ${r.path}`)));
    const c = await client();
    c.send(get(o.port, '/h1') + get(o.port, '/h2'));
    c.sock.end();
    const r1 = await c.response();
    expect(r1.body.toString()).toBe('answer /h1');
    // The second request was received whole before the FIN: it is owed an answer too.
    const r2 = await c.response().catch((e: Error) => e.message);
    expect(typeof r2 === 'string' ? r2 : r2.body.toString()).toBe('answer /h2');
    expect(await c.closedWithin(2000)).toBe(true);
  });

  it('11. interim 100 and 103 heads before the final response: the client gets only the final response', async () => {
    const o = await origin((r) => {
      if (r.path === '/split') {
        r.sock.write('HTTP/1.1 100 Continue\r\n\r\n');
        setTimeout(() => r.sock.write('HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n'), 10);
        setTimeout(() => r.sock.write(ok('final')), 30);
      } else r.sock.write(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n${ok('final too')}`);
    });
    const c = await client();
    c.send(get(o.port, '/split'));
    const r1 = await c.response();
    expect(r1.status).toBe(200);
    expect(r1.body.toString()).toBe('final');
    expect(r1.head).not.toMatch(/100 Continue|103 Early|Link:/);
    c.send(get(o.port, '/together'));
    const r2 = await c.response();
    expect(r2.status).toBe(200);
    expect(r2.head).not.toMatch(/100 Continue|103 Early|Link:/);
    expect(r2.body.toString()).toBe('final too');
    expect(c.pending().length).toBe(0);
  });

  it('12. a denied request on a keep-alive connection: 403 JSON with X-Egress-Denied-Reason, then an allowed request on the same connection', async () => {
    const o = await origin((r) => r.sock.write(ok('allowed')));
    const c = await client();
    c.send(get(o.port, '/secret', { host: 'denied.test' }));
    const r1 = await c.response();
    expect(r1.status).toBe(403);
    expect(r1.headers.get('x-egress-denied-reason')).toEqual(['not_allowlisted']);
    expect(r1.headers.get('content-type')).toEqual(['application/json']);
    expect(JSON.parse(r1.body.toString())).toMatchObject({ error: 'egress_denied', host: 'denied.test', reason: 'not_allowlisted' });
    expect(c.eof).toBe(false);
    c.send(get(o.port, '/open'));
    const r2 = await c.response();
    expect(r2.status).toBe(200);
    expect(r2.body.toString()).toBe('allowed');
    expect(o.requests.map((q) => q.path)).toEqual(['/open']);
  });

  it('13. a POST with a body (handed to node:http) works, and so does a GET after it on the same connection', async () => {
    const p = env.http.port;
    const c = await client();
    const body = 'hello world';
    c.send(`POST http://allowed.test:${p}/post HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const r1 = await c.response();
    expect(r1.status).toBe(200);
    expect(JSON.parse(r1.body.toString())).toMatchObject({ method: 'POST', url: '/post', body });
    c.send(get(p, '/after-post'));
    const r2 = await c.response();
    expect(r2.status).toBe(200);
    expect(JSON.parse(r2.body.toString())).toMatchObject({ method: 'GET', url: '/after-post' });
    expect(c.eof).toBe(false);
  });

  it("the origin's hop-by-hop headers are not relayed; other header bytes (obs-text too) are, exactly", async () => {
    const o = await origin((r) =>
      r.sock.write(Buffer.from('HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=99\r\nUpgrade: h2c\r\n' + 'Proxy-Connection: keep-alive\r\nX-Latin: caf\xe9\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nok', 'latin1')),
    );
    const c = await client();
    c.send(get(o.port, '/hop'));
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.headers.has('x-secret')).toBe(false);
    expect(r.headers.has('upgrade')).toBe(false);
    expect(r.headers.has('proxy-connection')).toBe(false);
    expect(r.headers.get('keep-alive')).not.toContain('timeout=99');
    expect(r.headers.get('connection')).toEqual(['keep-alive']);
    expect(r.headers.get('x-latin')).toEqual(['caf\xe9']);
    expect(r.headers.get('x-empty')).toEqual(['']);
    expect(r.body.toString()).toBe('ok');
  });

  it('an origin that says Connection: close with a Content-Length: the client keeps its connection, the next request opens a new origin connection', async () => {
    const o = await origin((r) => r.sock.write(ok(`answer ${r.conn}`, 'Connection: close\r\n')));
    const c = await client();
    c.send(get(o.port, '/one'));
    const r1 = await c.response();
    expect(r1.headers.get('connection')).toEqual(['keep-alive']);
    expect(r1.body.toString()).toBe('answer 1');
    c.send(get(o.port, '/two'));
    const r2 = await c.response();
    expect(r2.body.toString()).toBe('answer 2');
    expect(c.eof).toBe(false);
  });

  for (const [name, first] of [
    ['204 No Content', 'HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n'],
    ['304 Not Modified', 'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n'],
  ] as const) {
    it(`a ${name} without Content-Length (it has no body by definition): the origin connection stays pooled`, async () => {
      const o = await origin((r) => r.sock.write(r.path === '/first' ? first : ok('next')));
      const c = await client();
      c.send(get(o.port, '/first'));
      const r1 = await c.response();
      expect(r1.body.length).toBe(0);
      c.send(get(o.port, '/second'));
      expect((await c.response()).body.toString()).toBe('next');
      expect(o.requests.map((q) => [q.conn, q.path])).toEqual([
        [1, '/first'],
        [1, '/second'],
      ]);
    });
  }

  it('an endless response head: 502 once it passes the bound, the origin connection closed', async () => {
    const o = await origin((r) => r.sock.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}`));
    const c = await client();
    c.send(get(o.port, '/big'));
    const r = await c.response();
    expect(r.status).toBe(502);
    expect(r.head).not.toContain('X-Big');
    expect(await until(() => o.closed.has(1))).toBe(true);
  });

  it('a 101 Switching Protocols to a plain GET: 502, nothing after it relayed', async () => {
    const o = await origin((r) => r.sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\ntunnel-bytes HTTP/1.1 200 OK\r\n\r\n'));
    const c = await client();
    c.send(get(o.port, '/no-upgrade'));
    const r = await c.response();
    expect(r.status).toBe(502);
    expect(r.head + r.body.toString()).not.toContain('tunnel-bytes');
    expect(c.pending().length).toBe(0);
  });

  it('Transfer-Encoding: gzip beside a Content-Length (read until close): no Content-Length relayed, so a pipelining client is not handed a smuggled response', async () => {
    const o = await origin((r) => {
      if (r.path === '/first') r.sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED');
      else r.sock.write(ok('real second'));
    });
    const c = await client();
    c.send(get(o.port, '/first') + get(o.port, '/second'));
    const r1 = await c.response();
    expect(r1.headers.get('connection')).toEqual(['close']);
    // The body runs until the origin closes: a Content-Length of 5 would frame it wrongly.
    expect(r1.headers.has('content-length')).toBe(false);
    expect(r1.body.toString()).toBe('helloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED');
    expect(c.pending().length).toBe(0);
  });

  it('Content-Length: 5, 5 (accepted as 5) reaches a node:http client as a length it can read', async () => {
    const o = await origin((r) => r.sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello'));
    const got = await new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: env.proxyPort, localAddress: '127.0.0.2', agent: false, path: `http://allowed.test:${o.port}/dup`, headers: { host: `allowed.test:${o.port}` } }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
      req.setTimeout(3000, () => req.destroy(new Error('timeout')));
      req.end();
    });
    expect(got).toEqual({ status: 200, body: 'hello' });
  });

  it('Transfer-Encoding: gzip, chunked (chunked last) is relayed, not refused as malformed', async () => {
    const raw = '4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n';
    const o = await origin((r) => r.sock.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${raw}`, 'latin1'));
    const c = await client();
    c.send(get(o.port, '/gz'));
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.raw.toString('latin1')).toBe(raw);
  });

  it('Transfer-Encoding: gzip, chunked: the relayed head still names the gzip coding (else the client takes gzip bytes for the body)', async () => {
    const o = await origin((r) => r.sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n'));
    const c = await client();
    c.send(get(o.port, '/gz'));
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.headers.get('transfer-encoding')?.join(', ')).toMatch(/gzip/i);
  });
});

/**
 * The cases a hostile origin can play against either forwarding path: the raw front
 * (a body-less GET) and node:http (the same request with `Content-Length: 0`, which the
 * front hands over). Both share the core in src/doors/http/flight.ts; these pin that
 * neither relays bytes past a response's framing, passes a broken body on as complete, or
 * answers anything but 502 JSON for a broken head.
 */
const PATHS = [
  { name: 'the raw front', extra: '' },
  { name: 'node:http', extra: 'Content-Length: 0\r\n' },
] as const;

for (const via of PATHS) {
  describe(`a hostile origin, through ${via.name}`, () => {
    it('5. an origin sending more than its Content-Length (a smuggled response appended): exact body, and the next request gets a fresh answer over a new origin connection', async () => {
      const o = await origin((r) => {
        if (r.path === '/first') r.sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED');
        else r.sock.write(ok('fresh'));
      });
      const c = await client();
      c.send(get(o.port, '/first', { extra: via.extra }));
      const r1 = await c.response();
      expect(r1.body.toString()).toBe('hello');
      c.send(get(o.port, '/second', { extra: via.extra }));
      const r2 = await c.response();
      expect(r2.status).toBe(200);
      expect(r2.body.toString()).toBe('fresh');
      expect(c.pending().length).toBe(0);
      expect(r1.raw.toString() + r2.head + r2.raw.toString()).not.toContain('SMUGGLED');
      // The origin connection that over-sent was not reused.
      expect(o.requests.map((r) => [r.conn, r.path])).toEqual([
        [1, '/first'],
        [2, '/second'],
      ]);
      expect(await until(() => o.closed.has(1))).toBe(true);
    });

    it('5b. bytes after the end of a chunked body (same packet): exact body, next request fresh, that origin connection not reused', async () => {
      const o = await origin((r) => {
        if (r.path === '/first') r.sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED');
        else r.sock.write(ok('fresh'));
      });
      const c = await client();
      c.send(get(o.port, '/first', { extra: via.extra }));
      const r1 = await c.response();
      expect(r1.body.toString()).toBe('hello');
      expect(r1.raw.toString()).toBe('5\r\nhello\r\n0\r\n\r\n');
      c.send(get(o.port, '/second', { extra: via.extra }));
      const r2 = await c.response();
      expect(r2.body.toString()).toBe('fresh');
      expect(c.pending().length).toBe(0);
      expect(o.requests.map((r) => [r.conn, r.path])).toEqual([
        [1, '/first'],
        [2, '/second'],
      ]);
    });

    for (const [name, method, first] of [
      ['Content-Length: 0', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
      ['a HEAD answer', 'HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'],
    ] as const) {
      it(`5c. bytes after a body-less response (${name}), same packet: the next request gets a fresh answer over a new origin connection`, async () => {
        const o = await origin((r) => {
          if (r.path === '/first') r.sock.write(`${first}HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED`);
          else r.sock.write(ok('fresh'));
        });
        const c = await client();
        c.send(get(o.port, '/first', { method, extra: via.extra }));
        const r1 = await c.response(method);
        expect(r1.body.length).toBe(0);
        c.send(get(o.port, '/second', { extra: via.extra }));
        const r2 = await c.response();
        expect(r2.body.toString()).toBe('fresh');
        expect(c.pending().length).toBe(0);
        // As for a Content-Length body that over-sent (case 5): an origin that wrote past its
        // framing is out of step, and its connection is not pooled.
        expect(o.requests.map((r) => [r.conn, r.path])).toEqual([
          [1, '/first'],
          [2, '/second'],
        ]);
      });
    }

    it('6. a malformed chunked body: the client connection is cut, not ended as complete; the gateway keeps serving', async () => {
      const o = await origin((r) => {
        if (r.path === '/bad') {
          r.sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
          setTimeout(() => r.sock.write('zz\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED\r\n0\r\n\r\n'), 30);
        } else r.sock.write(ok('still here'));
      });
      const c = await client();
      c.send(get(o.port, '/bad', { extra: via.extra }));
      const r = await c.response();
      expect(r.status).toBe(200);
      expect(r.complete).toBe(false);
      expect(r.raw.toString()).not.toContain('0\r\n\r\n');
      expect(r.raw.toString()).not.toContain('SMUGGLED');
      expect(c.eof).toBe(true);
      // The origin connection went with it.
      expect(await until(() => o.closed.has(1))).toBe(true);

      const c2 = await client();
      c2.send(get(o.port, '/ok', { extra: via.extra }));
      const r2 = await c2.response();
      expect(r2.status).toBe(200);
      expect(r2.body.toString()).toBe('still here');
    });

    it('6b. a Content-Length body the origin cuts short: the client connection is cut, not ended as complete', async () => {
      const o = await origin((r) => {
        r.sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
        setTimeout(() => r.sock.end(), 30);
      });
      const c = await client();
      c.send(get(o.port, '/short', { extra: via.extra }));
      const r = await c.response();
      expect(r.status).toBe(200);
      expect(r.complete).toBe(false);
      expect(r.body.toString()).toBe('0123456789');
    });

    it('7a. a garbage response head: 502 JSON, none of the garbage relayed, the client connection stays usable', async () => {
      const o = await origin((r) => {
        if (r.path === '/garbage') r.sock.write('NOT HTTP AT ALL\r\nX: y\r\n\r\n');
        else r.sock.write(ok('fine'));
      });
      const c = await client();
      c.send(get(o.port, '/garbage', { extra: via.extra }));
      const r = await c.response();
      expect(r.status).toBe(502);
      expect(r.headers.get('content-type')).toEqual(['application/json']);
      expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'Bad Gateway' });
      expect(r.head + r.body.toString()).not.toContain('NOT HTTP');
      c.send(get(o.port, '/after', { extra: via.extra }));
      const r2 = await c.response();
      expect(r2.status).toBe(200);
      expect(r2.body.toString()).toBe('fine');
    });

    it("7a'. a malformed head that starts like HTTP (header without a colon): 502", async () => {
      const o = await origin((r) => r.sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nbroken header line\r\n\r\nhello'));
      const c = await client();
      c.send(get(o.port, '/x', { extra: via.extra }));
      const r = await c.response();
      expect(r.status).toBe(502);
      expect(r.body.toString()).not.toContain('hello');
    });

    it('7b. an origin that closes before answering: 502 (a fresh connection is not retried)', async () => {
      const o = await origin((r) => r.sock.destroy());
      const c = await client();
      c.send(get(o.port, '/close', { extra: via.extra }));
      const r = await c.response();
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'Bad Gateway' });
      expect(o.requests).toHaveLength(1);
    });
  });
}

describe('a silent origin, with a short idle time-out', () => {
  let short: ProxyEnv;
  beforeAll(async () => {
    short = await startProxyEnv({ 'idle-timeout-ms': '500' });
  });
  afterAll(async () => short?.close());

  for (const via of PATHS) {
    it(`7c. an origin that never answers: 504 within the idle time-out (${via.name})`, async () => {
      const o = await origin(() => {});
      const c = await client(short.proxyPort);
      const started = Date.now();
      c.send(get(o.port, '/silent', { extra: via.extra }));
      const r = await c.response('GET', 4000);
      const took = Date.now() - started;
      expect(r.status).toBe(504);
      expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'Gateway Timeout' });
      expect(took).toBeGreaterThanOrEqual(400);
      expect(took).toBeLessThan(3000);
    });

    it(`an origin that stalls mid-body: the client connection is cut after the idle time-out (${via.name})`, async () => {
      const o = await origin((r) => r.sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789'));
      const c = await client(short.proxyPort);
      const started = Date.now();
      c.send(get(o.port, '/stall', { extra: via.extra }));
      const r = await c.response('GET', 4000);
      expect(r.status).toBe(200);
      expect(r.complete).toBe(false);
      expect(r.body.toString()).toBe('0123456789');
      expect(Date.now() - started).toBeLessThan(3000);
      expect(await until(() => o.closed.has(1))).toBe(true);
    });
  }
});
