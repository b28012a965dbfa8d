import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, configChanges, loadConfig, OPTIONS, secretsKeyPath, withReloaded } from '../../src/config.js';
import { BOOLEAN_FLAGS, parseArgv } from '../support/argv.js';
import { tempDir } from '../support/temp.js';

const known = new Set([...OPTIONS.map((o) => o.flag), 'config', ...BOOLEAN_FLAGS]);
const flags = (...argv: string[]) => parseArgv(argv, known).flags;

function configFile(name: string, text: string): string {
  const dir = tempDir('cfg');
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('config precedence: flag > env > file > default', () => {
  it('uses the documented defaults when nothing is given', () => {
    const c = loadConfig(new Map(), {});
    expect(c.api).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(c.httpProxy).toEqual({ host: '127.0.0.1', port: 3128 });
    expect(c.socks).toEqual({ host: '127.0.0.1', port: 1080 });
    expect(c.dns).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(c.transparentTls).toBeNull();
    expect(c.transparentHttp).toBeNull();
    expect(c.db).toBe('./data/egress.db');
    expect(c.apiTokens).toEqual([]);
  });

  it('a YAML file beats the default, env beats the file, a flag beats env', () => {
    const file = configFile('gw.yaml', 'http-proxy: 127.0.0.1:4000\nsocks: 127.0.0.1:4001\ndns: 127.0.0.1:4002\n');
    const env = { EGRESS_SOCKS: '127.0.0.1:5001', EGRESS_DNS: '127.0.0.1:5002' };
    const c = loadConfig(flags('--config', file, '--dns', '127.0.0.1:6002'), env);
    expect(c.httpProxy?.port).toBe(4000);
    expect(c.socks?.port).toBe(5001);
    expect(c.dns?.port).toBe(6002);
  });

  it('reads JSON files with snake_case and camelCase keys', () => {
    const file = configFile('gw.json', JSON.stringify({ allow_private: ['10.0.0.0/8'], mirrorHosts: 'Mirror.Example.com' }));
    const c = loadConfig(flags('--config', file), {});
    expect(c.allowPrivate).toEqual(['10.0.0.0/8']);
    expect(c.mirrorHosts).toEqual(['mirror.example.com']);
  });

  it('collects repeatable flags and comma-separated env lists', () => {
    const c = loadConfig(flags('--api-token', 'a:acct1', '--api-token', 'b:acct2', '--allow-private', '127.0.0.0/8'), {});
    expect(c.apiTokens).toEqual([
      { token: 'a', accountId: 'acct1' },
      { token: 'b', accountId: 'acct2' },
    ]);
    const e = loadConfig(new Map(), { EGRESS_API_TOKENS: 'x:one,y:two' });
    expect(e.apiTokens.map((t) => t.accountId)).toEqual(['one', 'two']);
  });

  it('turns a listener off with "off" and parses upstream lists with default port 53', () => {
    const c = loadConfig(flags('--socks', 'off', '--upstream-dns', '127.0.0.1:5300,127.0.0.2,[::1]:53'), {});
    expect(c.socks).toBeNull();
    expect(c.upstreamDns).toEqual([
      { host: '127.0.0.1', port: 5300 },
      { host: '127.0.0.2', port: 53 },
      { host: '::1', port: 53 },
    ]);
  });
});

describe('bad settings are refused with the setting named', () => {
  const cases: Array<[string, string[], Record<string, string>, string]> = [
    ['bad address', ['--api', 'localhost:notaport'], {}, '--api'],
    ['port out of range', ['--http-proxy', '127.0.0.1:70000'], {}, '--http-proxy'],
    ['hostname instead of IP', ['--socks', 'example.com:1080'], {}, '--socks'],
    ['bad CIDR', ['--allow-private', '10.0.0.0/99'], {}, '--allow-private'],
    ['bad token pair', ['--api-token', 'no-account'], {}, '--api-token'],
    ['bad enum', ['--dns-deny-rcode', 'servfail'], {}, '--dns-deny-rcode'],
    ['bad number from env', [], { EGRESS_CONNECT_TIMEOUT_MS: 'soon' }, '--connect-timeout-ms'],
    ['half a TLS pair', ['--api-tls-cert', '/x.pem'], {}, '--api-tls-key'],
  ];
  for (const [what, argv, env, setting] of cases) {
    it(what, () => {
      let err: unknown;
      try {
        loadConfig(flags(...argv), env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).setting).toBe(setting);
    });
  }

  it("an unknown flag is refused (by this file's argv reader; the real command line: cli-after-install.test.ts)", () => {
    expect(() => parseArgv(['--no-such-flag', 'x'], known)).toThrow(ConfigError);
  });

  it('an unknown key in the config file is refused', () => {
    const file = configFile('bad.yaml', 'htp-proxy: 127.0.0.1:1\n');
    expect(() => loadConfig(flags('--config', file), {})).toThrow(/unknown setting "htp-proxy"/);
  });
});

describe('service host lists', () => {
  it('normalises toggle hosts and accepts wildcards and IPs', () => {
    const c = loadConfig(flags('--agent-gateway-hosts', 'Gateway.Example.com.,*.mcp.example.com,203.0.113.7'), {});
    expect(c.agentGatewayHosts).toEqual(['gateway.example.com', '*.mcp.example.com', '203.0.113.7']);
  });

  it('refuses a toggle host the matching rules reject, naming the setting', () => {
    expect(() => loadConfig(flags('--mirror-hosts', 'mirror.example.com,*.com'), {})).toThrow(/--mirror-hosts.*\*\.com/);
  });
});

describe('DNS door settings', () => {
  it('sizes the answer cache and the upstream time-out from flags, with documented defaults', () => {
    const d = loadConfig(new Map(), {});
    expect([d.dnsCacheSize, d.dnsUpstreamTimeoutMs]).toEqual([20_000, 1000]);
    const c = loadConfig(flags('--dns-cache-size', '500', '--dns-upstream-timeout-ms', '250'), {});
    expect([c.dnsCacheSize, c.dnsUpstreamTimeoutMs]).toEqual([500, 250]);
    expect(() => loadConfig(flags('--dns-upstream-timeout-ms', '0'), {})).toThrow(/--dns-upstream-timeout-ms/);
  });
});

describe('SIGHUP takes the reloadable settings and nothing else', () => {
  it('the running settings take RELOADABLE from the new file, keep every other as started, and leave the started object alone', () => {
    const started = loadConfig(flags('--dns-rate-limit', '10', '--tunnel-domain', 'a.test', '--log-level', 'info'), {});
    const next = loadConfig(flags('--dns-rate-limit', '20', '--tunnel-domain', 'b.test', '--log-level', 'debug', '--allow-private', '10.0.0.0/8'), {});
    const running = withReloaded(started, next);
    expect([running.dnsRateLimit, running.logLevel, running.allowPrivate]).toEqual([20, 'debug', ['10.0.0.0/8']]);
    expect(running.tunnelDomain).toBe('a.test');
    expect([started.dnsRateLimit, started.logLevel, started.allowPrivate]).toEqual([10, 'info', []]);
    // A second SIGHUP with the same file: nothing left to apply, the restart-only change still named.
    expect(configChanges(running, next)).toEqual({ reloadable: [], restart: ['--tunnel-domain'] });
  });
});

describe('the secrets key file', () => {
  it('sits beside the sqlite --db unless --secrets-key-file says otherwise (a gateway on a temporary db writes nothing into the working folder)', () => {
    expect(secretsKeyPath(loadConfig(new Map([['db', ['/var/lib/egress/egress.db']]]), {}))).toBe('/var/lib/egress/secrets.key');
    expect(secretsKeyPath(loadConfig(new Map(), {}))).toBe('data/secrets.key');
    expect(secretsKeyPath(loadConfig(new Map([['db', ['postgres://u@127.0.0.1:5432/egress']]]), {}))).toBe('./data/secrets.key');
    expect(secretsKeyPath(loadConfig(new Map([['secrets-key-file', ['/etc/egress/key']]]), {}))).toBe('/etc/egress/key');
  });
});
