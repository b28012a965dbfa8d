/** Fleet flags a gateway must refuse at start (exit 2 naming the setting), and the NATS password never shown. */
import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from '../../src/config.js';

const load = (args: Record<string, string>) => loadConfig(new Map(Object.entries(args).map(([k, v]) => [k, [v]])), {});

function refusal(args: Record<string, string>): string {
  try {
    load(args);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return 'accepted';
}

describe('fleet flags', () => {
  it('--follow needs --host-id, and excludes --nats', () => {
    expect(refusal({ follow: 'nats://127.0.0.1:4222' })).toMatch(/^--host-id: required with --follow/);
    expect(refusal({ follow: 'nats://127.0.0.1:4222', 'host-id': 'h1', nats: 'nats://127.0.0.1:4222' })).toMatch(/^--follow: a process either publishes/);
  });

  it('a NATS URL, a host id and a bucket name must be what they claim', () => {
    expect(refusal({ nats: 'http://127.0.0.1:4222' })).toMatch(/^--nats: .* is not nats:\/\/\[USER:PASSWORD@\]HOST:PORT/);
    expect(refusal({ follow: 'nats://127.0.0.1:4222', 'host-id': 'h1.>' })).toMatch(/^--host-id: .* is not a host name/);
    expect(refusal({ follow: 'nats://127.0.0.1:4222', 'host-id': '*' })).toMatch(/^--host-id/);
    expect(refusal({ nats: 'nats://127.0.0.1:4222', 'nats-bucket': 'a.b' })).toMatch(/^--nats-bucket/);
    expect(refusal({ nats: 'nats://127.0.0.1:4222', 'nats-user': 'u' })).toMatch(/^--nats-password: give --nats-user and --nats-password together/);
    expect(refusal({ follow: 'nats://127.0.0.1:4222,tls://10.0.0.2:4222', 'host-id': 'node-1.example' })).toBe('accepted');
  });

  it('user:password in a NATS URL becomes --nats-user/--nats-password and leaves the URL; a token or mixed credentials are refused', () => {
    const c = load({ follow: 'nats://side%40car:p%3Ass@127.0.0.1:4222,nats://side%40car:p%3Ass@127.0.0.2:4222', 'host-id': 'h1' });
    expect(c.follow).toBe('nats://127.0.0.1:4222,nats://127.0.0.2:4222');
    expect([c.natsUser, c.natsPassword]).toEqual(['side@car', 'p:ss']);
    expect(JSON.stringify(describeConfig(c))).not.toContain('p:ss');
    expect(refusal({ nats: 'nats://s3cret-token@127.0.0.1:4222' })).toMatch(/^--nats: a token in the URL is not supported/);
    expect(refusal({ nats: 'nats://u:one@127.0.0.1:4222,nats://u:two@127.0.0.2:4222' })).toMatch(/^--nats: every server in the list must carry the same/);
    expect(refusal({ nats: 'nats://u:one@127.0.0.1:4222', 'nats-user': 'u', 'nats-password': 'other' })).toMatch(/^--nats: the user:password in the URL differs/);
    const bad = refusal({ nats: 'nats://u:s3cret-pass@127.0.0.1:4222/x' });
    expect(bad).toMatch(/^--nats: "nats:\/\/\*\*\*@127\.0\.0\.1:4222\/x" is not/);
    expect(bad).not.toContain('s3cret-pass');
  });

  it('the start-up line shows the NATS password only as set', () => {
    const shown = describeConfig(load({ nats: 'nats://127.0.0.1:4222', 'nats-user': 'control', 'nats-password': 's3cret-pass' }));
    expect(shown['nats-password']).toBe('(set)');
    expect(JSON.stringify(shown)).not.toContain('s3cret-pass');
  });
});
