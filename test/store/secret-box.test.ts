/**
 * The secrets key and sealing (src/store/secret-box.ts): the key file is created 0600 once
 * and never replaced; a sealed value opens only with its key and on its own row (account and
 * secret id are authenticated), a flipped byte is refused, and the same value seals differently
 * each time (a fresh nonce).
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.js';
import { SecretBox, SecretKeyUnavailable } from '../../src/store/secret-box.js';

const dirs: string[] = [];
function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'egw-key-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the secrets key file', () => {
  it('is created with mode 0600 (and its folder) on first start, and a second start keeps it', () => {
    const file = join(dir(), 'nested', 'secrets.key');
    const first = new SecretBox(file, true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const key = readFileSync(file, 'utf8');
    expect(key.trim()).toMatch(/^[0-9a-f]{64}$/);
    const sealed = first.seal('acct', 'sec_1', 'v');
    const second = new SecretBox(file, true);
    expect(readFileSync(file, 'utf8')).toBe(key);
    expect(second.open('acct', 'sec_1', sealed)).toBe('v');
  });

  it('a reader that may not create it waits for it: refused at use while missing, works once the owner made it', () => {
    const file = join(dir(), 'secrets.key');
    const reader = new SecretBox(file, false);
    expect(() => reader.seal('acct', 'sec_1', 'v')).toThrow(SecretKeyUnavailable);
    const owner = new SecretBox(file, true);
    expect(reader.open('acct', 'sec_1', owner.seal('acct', 'sec_1', 'v'))).toBe('v');
  });

  it('a file that does not hold a key is a ConfigError naming --secrets-key-file', () => {
    const file = join(dir(), 'secrets.key');
    writeFileSync(file, 'not a key\n');
    expect(() => new SecretBox(file, true)).toThrow(ConfigError);
    expect(() => new SecretBox(file, true)).toThrow(/--secrets-key-file|does not hold a key/);
  });
});

describe('sealing', () => {
  it('never stores the plaintext, and seals the same value differently each time', () => {
    const box = new SecretBox(join(dir(), 'k'), true);
    const a = box.seal('acct', 'sec_1', 'sk-live-needle');
    const b = box.seal('acct', 'sec_1', 'sk-live-needle');
    expect(a).not.toBe(b);
    for (const s of [a, b]) {
      expect(s).not.toContain('sk-live-needle');
      expect(Buffer.from(s.slice(3), 'base64').toString('latin1')).not.toContain('sk-live-needle');
    }
  });

  it('a value moved to another row, another account, or sealed under another key does not open', () => {
    const box = new SecretBox(join(dir(), 'k'), true);
    const other = new SecretBox(join(dir(), 'k2'), true);
    const sealed = box.seal('acct-a', 'sec_1', 'value');
    expect(() => box.open('acct-a', 'sec_2', sealed)).toThrow(SecretKeyUnavailable);
    expect(() => box.open('acct-b', 'sec_1', sealed)).toThrow(SecretKeyUnavailable);
    expect(() => other.open('acct-a', 'sec_1', sealed)).toThrow(SecretKeyUnavailable);
    expect(box.open('acct-a', 'sec_1', sealed)).toBe('value');
  });

  it('a flipped byte anywhere (nonce, ciphertext, tag) is refused, never a wrong plaintext', () => {
    const box = new SecretBox(join(dir(), 'k'), true);
    const sealed = box.seal('acct', 'sec_1', 'value-with-some-length');
    const raw = Buffer.from(sealed.slice(3), 'base64');
    for (let i = 0; i < raw.length; i++) {
      const bad = Buffer.from(raw);
      bad[i] = bad[i]! ^ 0x01;
      expect(() => box.open('acct', 'sec_1', `v1.${bad.toString('base64')}`), `byte ${i}`).toThrow(SecretKeyUnavailable);
    }
    expect(() => box.open('acct', 'sec_1', 'v1.AAAA')).toThrow(SecretKeyUnavailable);
    expect(() => box.open('acct', 'sec_1', 'plaintext')).toThrow(SecretKeyUnavailable);
  });
});
