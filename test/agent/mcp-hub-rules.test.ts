/**
 * The MCP hub's pure parts: tool names exposed and called (service prefix, allowed_tools
 * globs, exact names only), what each JSON-RPC message gets, upstream answers rewritten, and
 * the SSE rewriter, which must give the same events however the stream is cut into chunks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ToolRules, serviceOf } from '../../src/doors/mcp-hub/rules.js';
import { planRequest, rewriteBody } from '../../src/doors/mcp-hub/messages.js';
import { SseRewriter } from '../../src/doors/mcp-hub/sse.js';

const rules = new ToolRules('github-readonly', ['github.search_*', 'github.get_issue']);

describe('tool names', () => {
  it('service is the config name before its first dash', () => {
    expect(serviceOf('github-readonly')).toBe('github');
    expect(serviceOf('linear')).toBe('linear');
    expect(serviceOf('a-b-c')).toBe('a');
  });

  it('globs without the service prefix match the upstream name; with it, the exposed name', () => {
    const bare = new ToolRules('github-readonly', ['search_*', 'get_issue']);
    expect(bare.exposed('search_code')).toBe('github.search_code');
    expect(bare.exposed('delete_repo')).toBeNull();
    expect(bare.call('github.search_code')).toMatchObject({ ok: true, upstream: 'search_code' });
    expect(bare.call('search_code').ok).toBe(false);
    expect(new ToolRules('github-readonly', ['*']).exposed('anything')).toBe('github.anything');
    // Another service's prefix is not this service's: matched against the upstream name only.
    expect(new ToolRules('github-readonly', ['gitlab.*']).exposed('search_code')).toBeNull();
  });

  it('exposes allowed upstream tools as <service>.<tool>, hides the rest', () => {
    expect(rules.exposed('search_issues')).toBe('github.search_issues');
    expect(rules.exposed('get_issue')).toBe('github.get_issue');
    expect(rules.exposed('get_issues')).toBeNull();
    expect(rules.exposed('delete_repo')).toBeNull();
    expect(rules.exposed('search_\u0456ssues')).toBeNull(); // outside the MCP alphabet
    expect(rules.exposed(42)).toBeNull();
  });

  it.each([
    ['github.search_issues', true],
    ['github.get_issue', true],
    ['github.delete_repo', false],
    ['search_issues', false],
    ['github.search_\u0456ssues', false],
    ['\uff47ithub.search_issues', false],
    ['github.search_issue\u0301s', false],
    ['github.search_issues\u200b', false],
    ['GITHUB.search_issues', false],
    ['github.search_issues/../delete', false],
    ['github.', false],
  ])('call %j allowed: %s', (name, ok) => {
    const v = rules.call(name);
    expect(v.ok).toBe(ok);
    if (v.ok) expect(v.upstream).toBe(name.slice('github.'.length));
  });
});

describe('planRequest', () => {
  const call = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

  it('maps an allowed call back to the upstream name', () => {
    const p = planRequest(call(1, 'github.search_code'), rules);
    expect(p.forward).toEqual({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search_code', arguments: {} } });
    expect(p.calls).toEqual([{ tool: 'github.search_code', allowed: true }]);
  });

  it.each(['resources/list', 'resources/read', 'resources/subscribe', 'prompts/list', 'prompts/get', 'completion/complete', 'sampling/createMessage', 'tools/unknown'])('refuses %s with -32601', (method) => {
    const p = planRequest({ jsonrpc: '2.0', id: 3, method, params: {} }, rules);
    expect(p.forward).toBeNull();
    expect(p.answers).toEqual([{ jsonrpc: '2.0', id: 3, error: { code: -32601, message: expect.stringContaining('not available') } }]);
  });

  it.each(['initialize', 'ping', 'tools/list', 'logging/setLevel'])('forwards %s', (method) => {
    expect(planRequest({ jsonrpc: '2.0', id: 1, method }, rules).forward).toEqual({ jsonrpc: '2.0', id: 1, method });
  });

  it('forwards client notifications and responses to server requests', () => {
    expect(planRequest({ jsonrpc: '2.0', method: 'notifications/initialized' }, rules).forward).not.toBeNull();
    expect(planRequest({ jsonrpc: '2.0', id: 'srv-1', result: { roots: [] } }, rules).forward).not.toBeNull();
  });

  it('a batch is all or nothing', () => {
    const ok = planRequest([call(1, 'github.search_code'), call(2, 'github.get_issue')], rules);
    expect(Array.isArray(ok.forward)).toBe(true);
    const bad = planRequest([call(1, 'github.search_code'), call(2, 'github.delete_repo'), { jsonrpc: '2.0', method: 'notifications/progress' }], rules);
    expect(bad.forward).toBeNull();
    expect(bad.answers.map((a) => [a.id, a.error.code])).toEqual([
      [1, -32600],
      [2, -32602],
    ]);
  });

  it('malformed messages are -32600, an empty batch too', () => {
    expect(planRequest({ id: 1, method: 'ping' }, rules).answers[0]!.error.code).toBe(-32600);
    expect(planRequest([], rules).answers[0]!.error.code).toBe(-32600);
    expect(planRequest('x', rules).answers[0]!.error.code).toBe(-32600);
    expect(planRequest({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 7 } }, rules).answers[0]!.error.code).toBe(-32602);
  });
});

describe('rewriteBody', () => {
  it('filters and renames tools/list results', () => {
    const out = rewriteBody({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'search_code', inputSchema: {} }, { name: 'delete_repo' }, { name: 'get_issue' }], nextCursor: 'c' } }, rules);
    expect(out).toEqual({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'github.search_code', inputSchema: {} }, { name: 'github.get_issue' }], nextCursor: 'c' } });
  });

  it('drops resources, prompts and completions from the initialize result', () => {
    const out = rewriteBody({ jsonrpc: '2.0', id: 0, result: { protocolVersion: '2025-06-18', capabilities: { tools: {}, resources: {}, prompts: {}, completions: {}, logging: {} }, serverInfo: { name: 's', version: '1' } } }, rules) as { result: { capabilities: object } };
    expect(out.result.capabilities).toEqual({ tools: {}, logging: {} });
  });

  it('drops resource and prompt notifications', () => {
    expect(rewriteBody({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: {} }, rules)).toBeNull();
    expect(rewriteBody({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }, rules)).not.toBeNull();
  });
});

async function runSse(chunks: Buffer[], rewrite = (m: unknown) => rewriteBody(m, rules)): Promise<string> {
  const t = new SseRewriter(rewrite);
  const out: string[] = [];
  t.on('data', (d: Buffer | string) => out.push(d.toString()));
  const done = new Promise<void>((resolve, reject) => {
    t.on('end', resolve);
    t.on('error', reject);
  });
  for (const c of chunks) t.write(c);
  t.end();
  await done;
  return out.join('');
}

describe('SseRewriter', () => {
  const stream = Buffer.from(
    [
      ': a comment\n\n',
      'id: 1\nevent: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_code"},{"name":"delete_repo"}]}}\n\n',
      'id: 2\r\ndata: {"jsonrpc":"2.0","method":"notifications/resources/updated"}\r\n\r\n',
      'data: not json\ndata: second line\n\n',
      'data: {"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"é ü ✓"}]}}\n\n',
    ].join(''),
  );

  it('drops data that is not JSON, so a junk line cannot carry a tools list past the filter', async () => {
    const out = await runSse([Buffer.from('id: 9\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_repo"}]}}\ndata: x\n\nid: 10\ndata: \n\n')]);
    expect(out).toBe('id: 9\n\nid: 10\ndata: \n\n');
  });

  it('rewrites each event and keeps the other fields', async () => {
    const out = await runSse([stream]);
    expect(out).toBe([': a comment\n\n', 'id: 1\nevent: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"github.search_code"}]}}\n\n', 'id: 2\n\n', 'data: {"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"é ü ✓"}]}}\n\n'].join(''));
  });

  it('gives the same output however the stream is cut (every byte boundary, multi-byte characters split)', async () => {
    const whole = await runSse([stream]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }), async (cuts) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const c of at) {
          chunks.push(stream.subarray(prev, c));
          prev = c;
        }
        chunks.push(stream.subarray(prev));
        expect(await runSse(chunks)).toBe(whole);
      }),
      { numRuns: 200 },
    );
    const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
    expect(await runSse(bytes)).toBe(whole);
  });

  it('an event over its limit is an error (the door cuts the stream)', async () => {
    const t = new SseRewriter((m) => m, 1024);
    const failed = new Promise<Error>((resolve) => t.on('error', resolve));
    t.resume();
    t.write(Buffer.from(`data: ${'x'.repeat(2048)}`));
    expect((await failed).message).toMatch(/too large/);
  });
});
