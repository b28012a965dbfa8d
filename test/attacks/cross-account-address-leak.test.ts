/**
 * Attack: account B probes which addresses account A's devboxes use, and learns their ids
 * (the proxy username), by registering devboxes at guessed addresses. The address_in_use
 * error names the other account's running devbox: "… is already the address of running
 * devbox dbx_…". Every other cross-account lookup is a plain 404 that names nothing.
 *
 * Expected: the conflict is still refused (addresses are unique among running devboxes),
 * but the message and details name another account's devbox only to that account; to any
 * other account the refusal is a generic 409 `address_unavailable`, word for word the one
 * a reserved address gets, which says neither whose it is nor that a devbox there runs.
 * Fix: src/store/sqlite/checks.ts freeAddresses() (pg/checks.ts alike) and src/api/validate.ts isReservedSource().
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
  it("is refused without naming the other account's devbox", async () => {
    const r = await gw.api.as(TOKEN_B).call('POST', '/v1/devboxes', { network: { addresses: ['127.0.0.2'] } });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('address_unavailable');
    expect(JSON.stringify(r.body)).not.toContain(aId);
    expect(r.body.error.message).not.toMatch(/running|devbox|in use|account [a-z]/i);
  });

  it("says the same for a reserved address as for another account's (no liveness oracle)", async () => {
    const taken = await gw.api.as(TOKEN_B).call('POST', '/v1/devboxes', { network: { addresses: ['127.0.0.2'] } });
    const reserved = await gw.api.as(TOKEN_B).call('POST', '/v1/devboxes', { network: { addresses: ['224.0.0.1'] } });
    expect(reserved.status).toBe(taken.status);
    expect(reserved.body.error.code).toBe(taken.body.error.code);
    expect(reserved.body.error.message.replace('224.0.0.1', 'X')).toBe(taken.body.error.message.replace('127.0.0.2', 'X'));
  });

  it('the same account still gets the owner named (useful to the operator)', async () => {
    const r = await gw.api.call('POST', '/v1/devboxes', { network: { addresses: ['127.0.0.2'] } });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toContain(aId);
  });
});
