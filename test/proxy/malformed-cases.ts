/**
 * Malformed and ambiguous HTTP request heads sent to the proxy door. `expect`: the status
 * the gateway must answer (null: it must close or answer some 4xx, never forward).
 * `P` is replaced by the origin's port.
 */
export interface MalformedCase {
  name: string;
  raw: string | Buffer;
  expect: number | null;
}

export const MALFORMED_CASES: MalformedCase[] = [
  { name: 'garbage bytes', raw: Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 13, 10, 13, 10]), expect: 400 },
  { name: 'no HTTP version', raw: 'GET http://allowed.test:P/\r\n\r\n', expect: 400 },
  { name: 'HTTP/2 preface on the proxy port', raw: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', expect: null },
  { name: 'space in the request target', raw: 'GET http://allowed.test:P/a b HTTP/1.1\r\nHost: allowed.test:P\r\n\r\n', expect: 400 },
  { name: 'header name with a space', raw: 'GET http://allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\nBad Header: x\r\n\r\n', expect: 400 },
  { name: 'NUL in a header value', raw: 'GET http://allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\nX: a\0b\r\n\r\n', expect: 400 },
  { name: 'Content-Length and Transfer-Encoding (smuggling)', raw: 'POST http://allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', expect: 400 },
  { name: 'two different Content-Lengths', raw: 'POST http://allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', expect: 400 },
  { name: 'negative Content-Length', raw: 'POST http://allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\nContent-Length: -1\r\n\r\n', expect: 400 },
  { name: 'obs-fold continuation line', raw: 'GET http://allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\nX: a\r\n b\r\n\r\n', expect: 400 },
  { name: 'HTTP/1.1 without Host', raw: 'GET http://allowed.test:P/ HTTP/1.1\r\n\r\n', expect: 400 },
  { name: 'two Host headers', raw: 'GET http://allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\nHost: denied.test\r\n\r\n', expect: 400 },
  { name: 'userinfo in the URL', raw: 'GET http://denied.test@allowed.test:P/ HTTP/1.1\r\nHost: allowed.test:P\r\n\r\n', expect: 400 },
  { name: 'ftp:// URL', raw: 'GET ftp://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n', expect: 400 },
  { name: 'origin-form to the proxy', raw: 'GET / HTTP/1.1\r\nHost: allowed.test:P\r\n\r\n', expect: 400 },
  { name: 'asterisk-form', raw: 'OPTIONS * HTTP/1.1\r\nHost: allowed.test:P\r\n\r\n', expect: 400 },
  { name: 'percent-encoded host', raw: 'GET http://allowed%2etest:P/ HTTP/1.1\r\nHost: allowed%2etest:P\r\n\r\n', expect: 403 },
  { name: 'bad port in URL', raw: 'GET http://allowed.test:99999/ HTTP/1.1\r\nHost: allowed.test:99999\r\n\r\n', expect: 400 },
  { name: 'CONNECT without port', raw: 'CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n', expect: 400 },
  { name: 'CONNECT with a path', raw: 'CONNECT allowed.test:P/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n', expect: 400 },
  { name: 'CONNECT bare IPv6 (ambiguous)', raw: 'CONNECT ::1:443 HTTP/1.1\r\nHost: x\r\n\r\n', expect: 400 },
  { name: 'over-long host label', raw: `GET http://${'a'.repeat(70)}.test:P/ HTTP/1.1\r\nHost: ${'a'.repeat(70)}.test:P\r\n\r\n`, expect: 403 },
];
