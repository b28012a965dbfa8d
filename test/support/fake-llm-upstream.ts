/**
 * A local HTTPS fake of the Anthropic and OpenAI APIs (certificate from the test CA) that
 * records every request it received (method, URL, headers, body), so a test can check the
 * real credential arrived and the devbox token did not. Streamed answers can be held after
 * their first event until the test releases them (`holdStreams`).
 */
import https from 'node:https';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestCa } from './test-ca.js';

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  /** Body chunks as they arrived (a chunked upload arrives in pieces). */
  chunks: number;
}

export interface FakeLlm {
  url: string;
  port: number;
  received: Received[];
  /** When set, streamed answers send their first event, then wait for this before the rest. */
  holdStreams: Promise<void> | null;
  /** Request body bytes received so far, counted as they arrive (before a request ends). */
  bytesArriving: number;
  /** Streamed answers that have sent their first event so far. */
  firstEvents: number;
  close(): Promise<void>;
}

function sse(res: http.ServerResponse, event: string | null, data: unknown): void {
  res.write(`${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

export async function startFakeLlm(ca: TestCa): Promise<FakeLlm> {
  const received: Received[] = [];
  const fake: FakeLlm = {
    url: '',
    port: 0,
    received,
    holdStreams: null,
    firstEvents: 0,
    bytesArriving: 0,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
  const server = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => {
      parts.push(d);
      fake.bytesArriving += d.length;
    });
    req.on('end', async () => {
      const body = Buffer.concat(parts).toString('utf8');
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body, chunks: parts.length });
      let json: { stream?: boolean; model?: string } = {};
      try {
        json = JSON.parse(body);
      } catch {
        /* not JSON: echoed below */
      }
      const path = (req.url ?? '').split('?')[0];
      if (path === '/v1/messages' && json.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        sse(res, 'message_start', { type: 'message_start', message: { id: 'msg_fake', type: 'message', role: 'assistant', model: json.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 0 } } });
        sse(res, 'content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
        sse(res, 'content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } });
        fake.firstEvents++;
        if (fake.holdStreams) await fake.holdStreams;
        sse(res, 'content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' world' } });
        sse(res, 'content_block_stop', { type: 'content_block_stop', index: 0 });
        sse(res, 'message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 2 } });
        sse(res, 'message_stop', { type: 'message_stop' });
        res.end();
        return;
      }
      if (path === '/v1/messages') {
        const out = JSON.stringify({ id: 'msg_fake', type: 'message', role: 'assistant', model: json.model, content: [{ type: 'text', text: 'Hello from the fake' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 4 } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
        res.end(out);
        return;
      }
      if (path === '/v1/chat/completions' && json.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        const chunk = (content: string, finish: string | null) => ({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: json.model, choices: [{ index: 0, delta: { content }, finish_reason: finish }] });
        sse(res, null, chunk('Hello', null));
        fake.firstEvents++;
        if (fake.holdStreams) await fake.holdStreams;
        sse(res, null, chunk(' world', 'stop'));
        sse(res, null, '[DONE]');
        res.end();
        return;
      }
      if (path === '/v1/chat/completions') {
        const out = JSON.stringify({
          id: 'chatcmpl-fake',
          object: 'chat.completion',
          created: 1,
          model: json.model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the fake' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
        });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
        res.end(out);
        return;
      }
      const out = JSON.stringify({ method: req.method, url: req.url, bytes: Buffer.byteLength(body) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.port = (server.address() as AddressInfo).port;
  fake.url = `https://127.0.0.1:${fake.port}`;
  return fake;
}
