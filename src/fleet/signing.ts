/**
 * Entries signed by the control plane, verified by sidecars (Ed25519, node:crypto).
 *
 * A replica given `--fleet-signing-key FILE` (a PKCS#8 PEM Ed25519 private key) signs every
 * value it writes into the bucket (entries, the snapshot marker, the watermark, heartbeats). A
 * sidecar given `--fleet-verify-keys FILE[,FILE…]` (SPKI PEM public keys) applies only values
 * signed by one of them: a forged or unsigned value is refused, counted and logged, and the
 * entry it would have replaced stays. What is signed is the bucket key, a newline, and the
 * value's JSON without its `kid` and `sig` fields, so a value cannot be replayed under another
 * key. `kid` names the key (the first 16 hex digits of the SHA-256 of its SPKI bytes), so a
 * sidecar may list the old and the new key while keys rotate (docs/deployment.md).
 */
import { type KeyObject, createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config.js';

export function keyId(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

const signable = (key: string, body: Record<string, unknown>) => Buffer.from(`${key}\n${JSON.stringify(body)}`);

export class Signer {
  readonly kid: string;
  readonly publicKey: KeyObject;

  constructor(private readonly privateKey: KeyObject) {
    this.publicKey = createPublicKey(privateKey);
    this.kid = keyId(this.publicKey);
  }

  /** The value's bytes with `kid` and `sig` added. */
  encode(key: string, value: object): Uint8Array {
    const body = { ...(value as Record<string, unknown>) };
    delete body.kid;
    delete body.sig;
    const sig = sign(null, signable(key, body), this.privateKey).toString('base64');
    return Buffer.from(JSON.stringify({ ...body, kid: this.kid, sig }));
  }
}

export type Verdict = 'ok' | 'unsigned' | 'unknown_key' | 'bad_signature';

export class Verifier {
  private readonly keys = new Map<string, KeyObject>();

  constructor(keys: KeyObject[]) {
    for (const k of keys) this.keys.set(keyId(k), k);
  }

  kids(): string[] {
    return [...this.keys.keys()];
  }

  keyObjects(): KeyObject[] {
    return [...this.keys.values()];
  }

  check(key: string, data: Uint8Array): Verdict {
    let v: Record<string, unknown>;
    try {
      const parsed = JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'unsigned';
      v = parsed as Record<string, unknown>;
    } catch {
      return 'unsigned';
    }
    const { kid, sig, ...body } = v;
    if (typeof kid !== 'string' || typeof sig !== 'string') return 'unsigned';
    const pub = this.keys.get(kid);
    if (pub === undefined) return 'unknown_key';
    const raw = Buffer.from(sig, 'base64');
    if (raw.length !== 64) return 'bad_signature';
    return verify(null, signable(key, body), pub, raw) ? 'ok' : 'bad_signature';
  }
}

export function loadSigner(path: string): Signer {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (e) {
    throw new ConfigError('--fleet-signing-key', `cannot read an Ed25519 private key (PKCS#8 PEM) from ${path}: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError('--fleet-signing-key', `${path} holds a ${key.asymmetricKeyType} key; an Ed25519 key is needed (openssl genpkey -algorithm ed25519)`);
  return new Signer(key);
}

export function loadVerifier(paths: string): Verifier {
  const keys = paths.split(',').map((p) => {
    const path = p.trim();
    let key: KeyObject;
    try {
      key = createPublicKey(readFileSync(path));
    } catch (e) {
      throw new ConfigError('--fleet-verify-keys', `cannot read an Ed25519 public key (PEM) from ${path}: ${(e as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError('--fleet-verify-keys', `${path} holds a ${key.asymmetricKeyType} key; an Ed25519 key is needed`);
    return key;
  });
  return new Verifier(keys);
}
