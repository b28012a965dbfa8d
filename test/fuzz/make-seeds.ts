/**
 * Writes the starting seeds of each fuzz target into test/fuzz/corpus/<target>/seed-*
 * from the project's own fixtures (valid and known-bad inputs), so fuzzing starts from
 * real protocol messages. Run once (npx tsx test/fuzz/make-seeds.ts); the fuzzer's finds
 * are added beside them with `npm run fuzz -- --keep`.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientHello } from '../fixtures/clienthello.js';
import { BAD_PACKETS, VALID_QUERY } from '../fixtures/dns-packets.js';
import { BAD_ENTRIES } from '../fixtures/hostnames.js';
import { SOCKS5_MALFORMED, connectDomain } from '../fixtures/socks5-cases.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const seeds: Record<string, Array<Buffer | string>> = {
  'http-request-head': [
    'GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n',
    'CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\nProxy-Authorization: Basic eDp5\r\n\r\n',
    'HEAD http://[::1]:8080/x?y HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\nAccept: */*\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Long:   padded value\t \r\n\r\n',
    'POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 3\r\n\r\nabc',
  ],
  'http-response-head': [
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    'HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0, 0\r\n\r\n',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
    'HTTP/1.1 301\r\nLocation: http://x/\r\nConnection: close\r\n\r\n',
  ],
  'http-chunked': ['5\r\nhello\r\n0\r\n\r\n', '3;name=value\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n', '0\r\n\r\nextra', 'fffffffffffffff\r\n', '1 \t;x\r\na\r\n0\r\n\r\n'],
  'connect-line': ['allowed.test:443', '[::1]:8443', '127.0.0.1:22', 'xn--bcher-kva.example:443', 'a@b:1', '0x7f.1:80'],
  socks5: [
    connectDomain('allowed.test', 443),
    Buffer.from([0x05, 0x01, 0x02, 0x01, 0x01, 0x61, 0x01, 0x62, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x01, 0xbb]),
    Buffer.from([0x05, 0x02, 0x00, 0x02, 0x05, 0x01, 0x00, 0x04, ...Buffer.alloc(15), 1, 0, 80]),
    ...SOCKS5_MALFORMED.map((c) => c.send),
  ],
  clienthello: [
    clientHello({ sni: 'allowed.test' }),
    clientHello({ sni: 'Allowed.Test', recordSize: 7 }),
    clientHello({ sni: 'allowed.test', extensions: [[0xfe0d, Buffer.alloc(8, 1)]] }),
    clientHello({
      names: [
        { type: 0, name: 'a.test' },
        { type: 0, name: 'b.test' },
      ],
    }),
    clientHello({ noExtensions: true }),
    Buffer.from([0x01, 12, 0x41, 0x62, 0x63, 0x2e, 0x74, 0x65, 0x73, 0x74, 0, 0, 0, 200, 2, 0xfe, 0x0d, 4, 1, 2, 3, 4, 0, 9, 0]),
  ],
  'tls-handshake-window': [
    Buffer.concat([Buffer.from([0x00]), clientHello({ sni: 'allowed.test' })]),
    Buffer.concat([Buffer.from([0x40, 20, 3, 3, 0, 1, 1]), clientHello({ sni: 'evil.test', recordSize: 40 })]),
    Buffer.concat([Buffer.from([0x40, 23, 3, 3, 0, 3, 1, 2, 3]), clientHello({ sni: 'allowed.test', extensions: [[0xffce, Buffer.alloc(4, 1)]] })]),
    Buffer.from([0x80, 0, 7, 0, 33, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]),
    Buffer.from([0xc0, 1, 0, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  ],
  'dns-wire': [VALID_QUERY, ...BAD_PACKETS.map((p) => p.bytes)],
  hostname: ['allowed.test', 'ALLOWED.test.', 'xn--bcher-kva.example', 'bücher.example', '例え.テスト', '0x7f.1', '[::ffff:127.0.0.1]', '*.example.com', 'a'.repeat(64) + '.test', ...BAD_ENTRIES.map((e) => String(e.input))],
  'api-hostnames': ['allowed.test\n*.example.com\nALLOWED.test.', 'a.test\nhttps://b.test\nc.test', 'bücher.example\nxn--bcher-kva.example'],
  'policy-compiler': ['allowed.test\n*.example.com\n*.a.example.com\n10.0.0.0/8\n10.1.0.0/16 443-444 TCP\n::/0 53 UDP\n?www.example.com\n?a.example.com\n?10.1.2.3\n?[::1]', 'xn--bcher-kva.example\nBAD..name\n*.com\n?bücher.example\n?x.y.z.example.com\n1.2.3.4/40'],
  'policy-file': [],
  'mcp-hub': [
    'id: 1\nevent: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_code"},{"name":"delete_repo"},{"name":"get_issue"}]}}\n\n',
    'data: {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"github.search_issues","arguments":{"q":"x"}}}\n\ndata: [{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"github.delete_repo"}},{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"github.get_issue"}}]\n\n',
    ': comment\r\nretry: 10\r\ndata: {"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"resources":{}}}}\r\n\r\ndata: not json\ndata: two\n\n',
    'data: {"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"github.search_\u0456ssues"}}\n\ndata: {"jsonrpc":"2.0","method":"notifications/resources/updated"}\n\n',
  ],
};

for (const f of readdirSync(join(root, 'policies'))) seeds['policy-file']!.push(readFileSync(join(root, 'policies', f)));
for (const [target, list] of Object.entries(seeds)) {
  const dir = join(root, 'test', 'fuzz', 'corpus', target);
  mkdirSync(dir, { recursive: true });
  list.forEach((s, i) => {
    writeFileSync(join(dir, `seed-${String(i).padStart(2, '0')}`), s);
  });
  console.log(`${target}: ${list.length} seeds`);
}
