/**
 * A real MCP server (the official SDK's McpServer behind StreamableHTTPServerTransport, one
 * transport per session) on HTTPS with the test CA's certificate: tools `search_issues`,
 * `search_code`, `delete_repo`, one resource and one prompt. It records every JSON-RPC message
 * and the headers it received, so a test can see what reached it (and what never did).
 */
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import type { TestCa } from './test-ca.js';

export interface McpSeen {
  httpMethod: string;
  headers: http.IncomingHttpHeaders;
  /** JSON-RPC messages of a POST body (a batch flattened). */
  messages: Array<{ method?: string; id?: unknown; params?: { name?: string } }>;
}

export interface McpUpstream {
  url: string;
  seen: McpSeen[];
  /** Names of the tools/call requests received, in order. */
  toolCalls(): string[];
  close(): Promise<void>;
}

function makeServer(): McpServer {
  const server = new McpServer({ name: 'fake-github', version: '1.0.0' });
  const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
  server.registerTool('search_issues', { description: 'search issues', inputSchema: { q: z.string() } }, async ({ q }) => text(`issues for ${q}`));
  server.registerTool('search_code', { description: 'search code', inputSchema: { q: z.string() } }, async ({ q }) => text(`code for ${q}`));
  server.registerTool('delete_repo', { description: 'delete a repository', inputSchema: { repo: z.string() } }, async ({ repo }) => text(`deleted ${repo}`));
  server.registerResource('secrets', 'file:///secrets.txt', { description: 'private data' }, async (uri) => ({ contents: [{ uri: uri.href, text: 'private' }] }));
  server.registerPrompt('leak', { description: 'a prompt' }, () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }] }));
  return server;
}

/** `json`: answers POSTs with application/json (enableJsonResponse); else SSE. */
export async function startMcpUpstream(ca: TestCa, mode: 'json' | 'sse'): Promise<McpUpstream> {
  const seen: McpSeen[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const srv = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', async () => {
      let body: unknown;
      const raw = Buffer.concat(parts).toString('utf8');
      if (raw !== '') body = JSON.parse(raw);
      const msgs = body === undefined ? [] : Array.isArray(body) ? body : [body];
      seen.push({ httpMethod: req.method ?? '', headers: req.headers, messages: msgs });
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (transport === undefined) {
        if (typeof sid === 'string') {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
          return;
        }
        const t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), enableJsonResponse: mode === 'json', onsessioninitialized: (id) => void sessions.set(id, t) });
        t.onclose = () => {
          if (t.sessionId) sessions.delete(t.sessionId);
        };
        await makeServer().connect(t);
        transport = t;
      }
      await transport.handleRequest(req, res, body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/mcp`,
    seen,
    toolCalls: () => seen.flatMap((s) => s.messages.filter((m) => m.method === 'tools/call').map((m) => m.params?.name ?? '?')),
    async close() {
      for (const t of sessions.values()) await t.close().catch(() => {});
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}
