/**
 * Secrets at rest: AES-256-GCM with a random 96-bit nonce per value, the key read from
 * `--secrets-key-file`. The process that owns the store creates the file on first start
 * (32 random bytes as 64 hex characters, mode 0600, written to a temporary name and linked
 * into place so a concurrent reader never sees half a key); every other process (the API
 * process, door workers) only reads it. A stored value is `v1.` + base64(nonce | ciphertext |
 * tag); the additional data binds it to its row (account and secret id), so a ciphertext
 * copied onto another secret's row does not decrypt.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../config.js';
import { StoreError } from './types.js';

const SETTING = '--secrets-key-file';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1.';

/** Why a secret cannot be sealed or opened now (no key file yet, or a damaged value). */
export class SecretKeyUnavailable extends StoreError {
  constructor(message: string) {
    super('secrets_unavailable', message);
  }
}

function parseKey(path: string, text: string): Buffer {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new ConfigError(SETTING, `${path} does not hold a key: expected 64 hexadecimal characters (32 bytes)`);
  return Buffer.from(hex, 'hex');
}

/** Creates the key file (0600) unless it exists; never replaces one (that would orphan every stored secret). */
function createKeyFile(path: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, `${randomBytes(KEY_BYTES).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      unlinkSync(tmp);
    }
  } catch (e) {
    throw new ConfigError(SETTING, `cannot create ${path}: ${(e as Error).message}`);
  }
}

/**
 * The secrets key. `create`: make the file when missing (the store's owner, at start);
 * otherwise a missing file is read again at the next use (the owner may not have made it yet).
 */
export class SecretBox {
  private key: Buffer | null = null;
  readonly path: string;

  constructor(path: string, create: boolean) {
    this.path = resolve(path);
    if (create) {
      this.load(true);
    }
  }

  private load(create: boolean): Buffer {
    if (this.key) return this.key;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && create) {
        createKeyFile(this.path);
        return this.load(false);
      }
      if (code === 'ENOENT') throw new SecretKeyUnavailable(`the secrets key ${this.path} does not exist yet (${SETTING}; the gateway that owns the store creates it at start)`);
      throw new ConfigError(SETTING, `cannot read ${this.path}: ${(e as Error).message}`);
    }
    this.key = parseKey(this.path, text);
    return this.key;
  }

  /** Encrypts value for the row (account, secret id). */
  seal(accountId: string, secretId: string, value: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', this.load(false), nonce);
    c.setAAD(aad(accountId, secretId));
    const body = Buffer.concat([c.update(value, 'utf8'), c.final()]);
    return VERSION + Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64');
  }

  /** The plaintext of a sealed value of row (account, secret id); throws when it does not authenticate. */
  open(accountId: string, secretId: string, sealed: string): string {
    if (!sealed.startsWith(VERSION)) throw new SecretKeyUnavailable(`secret ${secretId}: unknown format`);
    const raw = Buffer.from(sealed.slice(VERSION.length), 'base64');
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new SecretKeyUnavailable(`secret ${secretId}: truncated value`);
    const d = createDecipheriv('aes-256-gcm', this.load(false), raw.subarray(0, NONCE_BYTES));
    d.setAAD(aad(accountId, secretId));
    d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
    } catch {
      throw new SecretKeyUnavailable(`secret ${secretId} does not decrypt with ${this.path} (another key, or a damaged value)`);
    }
  }
}

function aad(accountId: string, secretId: string): Buffer {
  return Buffer.from(`${accountId}\u0000${secretId}`, 'utf8');
}
