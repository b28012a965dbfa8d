/**
 * Issue #11 case 8: request bodies are JSON in UTF-8 and nothing else. Invalid UTF-8 and
 * lone surrogates are a 400 (before: stored as U+FFFD); a body of another media type is a
 * 415 (before: text/plain was parsed). Real HTTP client (undici) sending raw bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, errorOf, startTestApi, TOKEN_A, type TestApi } from '../support/api.js';
import { INVALID_UTF8_BODIES, LONE_SURROGATE_BODIES } from '../fixtures/hostile-bodies.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(async () => {
  await api.close();
});

async function post(body: Buffer | string, contentType: string | null = 'application/json') {
  const headers: Record<string, string> = { authorization: `Bearer ${TOKEN_A}` };
  if (contentType !== null) headers['content-type'] = contentType;
  const res = await fetch(`${api.base}/v1/network-policies`, { method: 'POST', headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed as any, text };
}

const count = async () => (await call(api, 'GET', '/v1/network-policies?limit=5000')).body.total_count as number;

describe('invalid UTF-8 in a body is a 400, nothing stored', () => {
  it.each(INVALID_UTF8_BODIES.map((b) => [b.name, b.body] as const))('%s', async (_name, body) => {
    const before = await count();
    const r = await post(body);
    expect(errorOf(r, 400)).toMatch(/not valid UTF-8/);
    expect(r.body.error.code).toBe('invalid_request');
    expect(await count()).toBe(before);
  });
});

describe('lone surrogates are a 400 naming the field, nothing stored', () => {
  it.each(LONE_SURROGATE_BODIES.map((b) => [b.name, b] as const))('%s', async (_name, b) => {
    const before = await count();
    const r = await post(b.body);
    expect(errorOf(r, 400)).toContain(`"${b.field}"`);
    expect(errorOf(r, 400)).toMatch(/lone surrogate/);
    expect(await count()).toBe(before);
  });

  it('a lone surrogate in an update is refused and the policy keeps its text', async () => {
    const p = (await post('{"name":"keep","description":"before"}')).body;
    const r = await call(api, 'POST', `/v1/network-policies/${p.id}`, { body: '{"description":"\\ud800"}' });
    expect(errorOf(r, 400)).toMatch(/"description".*lone surrogate/);
    expect((await call(api, 'GET', `/v1/network-policies/${p.id}`)).body.description).toBe('before');
  });

  it('valid non-ASCII text and surrogate pairs round-trip exactly', async () => {
    const r = await post('{"name":"ünïcödé \\ud83d\\ude00 😀","description":"日本語"}');
    expect(r.status).toBe(200);
    expect(r.body.name).toBe('ünïcödé 😀 😀');
    const got = await call(api, 'GET', `/v1/network-policies/${r.body.id}`);
    expect(got.body.name).toBe('ünïcödé 😀 😀');
    expect(got.body.description).toBe('日本語');
  });
});

describe('only application/json bodies are parsed', () => {
  const valid = JSON.stringify({ name: 'media-type' });
  it.each([['text/plain'], ['text/plain; charset=utf-8'], ['application/x-www-form-urlencoded'], ['application/octet-stream'], ['application/json; charset=iso-8859-1']])('%s is a 415 unsupported_media_type, nothing stored', async (type) => {
    const before = await count();
    const r = await post(valid, type);
    expect(errorOf(r, 415)).toMatch(/JSON/);
    expect(r.body.error.code).toBe('unsupported_media_type');
    expect(await count()).toBe(before);
  });

  it('a body without a Content-Type is a 415', async () => {
    expect(errorOf(await post(Buffer.from(valid), null), 415)).toMatch(/application\/json/);
  });

  it('application/json with or without charset=utf-8 is parsed', async () => {
    expect((await post(JSON.stringify({ name: 'mt-1' }), 'application/json; charset=utf-8')).status).toBe(200);
    expect((await post(JSON.stringify({ name: 'mt-2' }), 'Application/JSON')).status).toBe(200);
  });
});
