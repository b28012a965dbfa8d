/**
 * `tokens revoke REF` names one API token the same way on both backends (store/api-tokens.ts):
 * by its id, its full text, an id prefix or its display prefix (4 characters or more); a
 * shorter REF names only by exact id or text; a REF several tokens share is refused naming
 * them, and nothing is deleted.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/store/types.js';
import { BACKENDS, type Backend, openBackend } from '../support/backends.js';
import { sharedPostgres } from '../support/postgres.js';

beforeAll(async () => {
  await sharedPostgres();
}, 120_000);

const open = (backend: Backend) => openBackend(backend, 'tokref');

async function refusal(p: Promise<unknown>): Promise<StoreError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(StoreError);
  return e as StoreError;
}

describe.each(BACKENDS)('token references on %s', (backend) => {
  it('revokes by id, full text, id prefix and display prefix; each REF names exactly one token', async () => {
    const s = await open(backend);
    try {
      const byId = await s.tokens.create('a');
      const byText = await s.tokens.create('b');
      const byIdPrefix = await s.tokens.create('c');
      const byDisplay = await s.tokens.create('d');
      expect((await s.tokens.revoke(byId.info.id)).id).toBe(byId.info.id);
      expect((await s.tokens.revoke(byText.token)).id).toBe(byText.info.id);
      // The shortest id prefix no other token shares.
      const others = [byDisplay.info.id];
      let n = 4;
      while (others.some((o) => o.startsWith(byIdPrefix.info.id.slice(0, n)))) n++;
      expect((await s.tokens.revoke(byIdPrefix.info.id.slice(0, n))).id).toBe(byIdPrefix.info.id);
      expect((await s.tokens.revoke(byDisplay.info.prefix!)).id).toBe(byDisplay.info.id);
      expect(await s.tokens.list()).toEqual([]);
      // A revoked token no longer authenticates.
      expect(await s.tokens.accountFor(byText.token)).toBeNull();
    } finally {
      await s.close();
    }
  });

  it('refuses a REF two tokens share (naming both) and a short REF that is no exact id; deletes nothing', async () => {
    const s = await open(backend);
    try {
      const one = await s.tokens.create('a');
      const two = await s.tokens.create('a');
      const shared = await refusal(s.tokens.revoke('egw_'));
      expect(shared.code).toBe('ambiguous');
      expect(shared.message).toContain(one.info.id);
      expect(shared.message).toContain(two.info.id);
      expect((await refusal(s.tokens.revoke('tok_'))).code).toBe('ambiguous');
      expect((await refusal(s.tokens.revoke(one.info.id.slice(0, 3)))).code).toBe('not_found');
      expect((await refusal(s.tokens.revoke('egw_nothing-like-this'))).code).toBe('not_found');
      expect((await s.tokens.list()).map((t) => t.id).sort()).toEqual([one.info.id, two.info.id].sort());
    } finally {
      await s.close();
    }
  });
});
