/**
 * Uploads stream through the agent gateway: a chunked request body reaches the upstream piece
 * by piece while the devbox is still sending (no whole-body buffering), and arrives intact;
 * a large fixed-length body arrives intact too.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { curl } from '../support/proxy.js';
import { waitFor } from '../support/wait.js';

let rig: AgentRig;
let fake: FakeLlm;
let token: string;

beforeAll(async () => {
  rig = await startAgentRig();
  fake = await startFakeLlm(rig.ca);
  const box = await rig.devbox(await rig.policy({ allow_agent_gateway: true }), ['127.0.0.1']);
  token = (await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'bearer' }, secret: 'sk-REAL' })).token;
}, 60_000);

afterAll(async () => {
  await fake?.close();
  await rig?.close();
});

describe('uploads', () => {
  it('a chunked body reaches the upstream while the devbox is still sending it', async () => {
    const start = fake.bytesArriving;
    const req = http.request(`${rig.agentUrl}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' } });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
    });
    const piece = Buffer.alloc(16 * 1024, 'a');
    req.write(piece);
    // The first piece is upstream before the second is even written.
    await waitFor(() => fake.bytesArriving - start >= piece.length, 10_000, 'the first piece to reach the upstream');
    req.write(piece);
    req.end(Buffer.from('END'));
    const r = await answer;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ method: 'POST', url: '/v1/files', bytes: 2 * piece.length + 3 });
    expect(fake.received.at(-1)!.headers['transfer-encoding']).toBe('chunked');
  });

  it('a 4 MiB body with Content-Length arrives intact', async () => {
    const body = Buffer.alloc(4 * 1024 * 1024, 'z');
    const file = join(rig.tg.dir, 'upload.bin');
    writeFileSync(file, body);
    const r = await curl(['-H', `Authorization: Bearer ${token}`, '-H', 'content-type: text/plain', '--data-binary', `@${file}`, `${rig.agentUrl}/v1/upload?purpose=test`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toMatchObject({ url: '/v1/upload?purpose=test', bytes: body.length });
    expect(fake.received.at(-1)!.headers['content-length']).toBe(String(body.length));
  });
});
