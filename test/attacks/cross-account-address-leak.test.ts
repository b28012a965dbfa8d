/**
 * Attack: account B probes which addresses account A's devboxes use, and learns their ids
 * (the proxy username), by registering devboxes at guessed addresses. The address_in_use
 * error names the other account's running devbox: "… is already the address of running
 * devbox dbx_…". Every other cross-account lookup is a plain 404 that names nothing.
 *
 * Expected: the conflict is still refused (addresses are unique among running devboxes),
 * but the message and details name another account's devbox only to that account.
 * Fix: src/store/index.ts createDevbox(): include `devbox_id` / the owner id in the
 * message only when the owner belongs to the same account.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_B, startTestGateway, type TestGateway } from '../support/gateway.js';

let gw: TestGateway;
let aId: string;
beforeAll(async () => {
  gw = await startTestGateway();
  aId = (await gw.api.devbox(null, ['127.0.0.2'], 'a-secret-box')).id;
});
afterAll(async () => gw?.close());

describe('address_in_use across accounts', () => {
  it('is refused without naming the other account\'s devbox', async () => {
    const r = await gw.api.as(TOKEN_B).call('POST', '/v1/devboxes', { network: { addresses: ['127.0.0.2'] } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('address_in_use');
    expect(JSON.stringify(r.body)).not.toContain(aId);
  });

  it('the same account still gets the owner named (useful to the operator)', async () => {
    const r = await gw.api.call('POST', '/v1/devboxes', { network: { addresses: ['127.0.0.2'] } });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toContain(aId);
  });
});
