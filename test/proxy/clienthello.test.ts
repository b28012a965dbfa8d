/**
 * Threat: a client hides its real destination from the SNI check with a ClientHello the
 * parser misreads (split records, two names, lying lengths) or crashes the gateway with
 * garbage. The parser must be exact on real hellos, refuse ambiguity, and never throw.
 */
import { describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { parseClientHello, tlsAlert, ALERT_ACCESS_DENIED } from '../../src/doors/floor/clienthello.js';
import { HELLO_CASES } from '../fixtures/clienthello-cases.js';
import { clientHello } from '../fixtures/clienthello.js';

describe('ClientHello parser', () => {
  for (const c of HELLO_CASES) {
    it(c.name, () => {
      const r = parseClientHello(c.bytes);
      if (typeof c.expect === 'string') expect(r).toBe(c.expect);
      else {
        expect(typeof r).toBe('object');
        expect((r as { sni: string | null }).sni).toBe(c.expect.sni);
      }
    });
  }

  it('reports the ECH flag and the bytes the hello occupies', () => {
    const b = clientHello({ sni: 'public.test', extensions: [[0xfe0d, Buffer.from([0])]] });
    const r = parseClientHello(Buffer.concat([b, Buffer.from('next')]));
    // Extra bytes after the hello's last record are the next record: the hello is complete.
    expect(r).toMatchObject({ sni: 'public.test', ech: true, length: b.length });
  });

  it('is incremental: every prefix of a real hello is incomplete, the whole is parsed', () => {
    const b = clientHello({ sni: 'allowed.test', recordSize: 64 });
    for (let i = 0; i < b.length; i++) expect(parseClientHello(b.subarray(0, i))).toBe('incomplete');
    expect(parseClientHello(b)).toMatchObject({ sni: 'allowed.test' });
  });

  it('parses the hello node:tls actually sends', async () => {
    const got = await new Promise<Buffer>((resolve, reject) => {
      const srv = net.createServer((s) => {
        let buf = Buffer.alloc(0);
        s.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          if (parseClientHello(buf) !== 'incomplete') {
            s.destroy();
            srv.close();
            resolve(buf);
          }
        });
      });
      srv.listen(0, '127.0.0.1', () => {
        const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, servername: 'Real.Example.Test' });
        c.on('error', () => {});
        setTimeout(() => reject(new Error('no hello')), 5000).unref();
      });
    });
    expect(parseClientHello(got)).toMatchObject({ sni: 'real.example.test', ech: false });
  });

  it('never throws on random bytes, and bounds its input', () => {
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const base = clientHello({ sni: 'allowed.test' });
    for (let i = 0; i < 20000; i++) {
      let b: Buffer;
      if (i % 2 === 0) {
        b = Buffer.alloc(Math.floor(rnd() * 300));
        for (let k = 0; k < b.length; k++) b[k] = Math.floor(rnd() * 256);
        if (rnd() < 0.7 && b.length > 0) b[0] = 0x16;
        if (rnd() < 0.5 && b.length > 1) b[1] = 3;
      } else {
        // mutate a real hello: flip a few bytes, truncate
        b = Buffer.from(base.subarray(0, Math.floor(rnd() * (base.length + 1))));
        for (let k = 0; k < 3; k++) if (b.length > 0) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      }
      const r = parseClientHello(b);
      expect(r === 'incomplete' || r === 'not_tls' || r === 'malformed' || typeof r === 'object').toBe(true);
      if (typeof r === 'object' && r.sni !== null) expect(r.sni).toMatch(/^[a-z0-9._-]+$/);
    }
    // A stream of endless tiny records never grows without bound.
    const many = Buffer.concat(Array.from({ length: 20000 }, () => Buffer.from([0x16, 3, 1, 0, 1, 0x01])));
    expect(parseClientHello(many)).toBe('malformed');
  });

  it('alert record bytes', () => {
    expect([...tlsAlert(ALERT_ACCESS_DENIED)]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
  });
});
