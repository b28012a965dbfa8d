/**
 * `serve` (the real CLI) with the credential doors: --agent-gateway and --mcp-hub listen and
 * are named in the start-up line, in one process and with --workers 2; a request without a
 * token is refused in JSON; an unreadable --upstream-ca-file stops start-up with exit 2 naming
 * the setting.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningServe, spawnCli, startServe, LOOPBACK_DOORS } from '../support/serve-process.js';
import { curl } from '../support/proxy.js';
import { waitFor } from '../support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'egw-agent-serve-'));
const running: RunningServe[] = [];

afterAll(async () => {
  for (const s of running) await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

function listeners(out: string): Record<string, string> {
  const line = out.split('\n').find((l) => l.includes('egress-gateway listening'))!;
  return JSON.parse(line).listeners as Record<string, string>;
}

describe('serve with the agent gateway and MCP hub', () => {
  it.each([
    ['one process', []],
    ['--workers 2', ['--workers', '2']],
  ])('%s: both listen, a request without a token is refused in JSON', async (_what, extra) => {
    const s = await startServe(['--db', join(dir, `${extra.length}.db`), '--agent-gateway', '127.0.0.1:0', '--mcp-hub', '127.0.0.1:0', ...extra]);
    running.push(s);
    const l = listeners(s.out());
    expect(l['agent-gateway']).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(l['mcp-hub']).toMatch(/^127\.0\.0\.1:\d+$/);
    for (const door of ['agent-gateway', 'mcp-hub']) {
      const r = await curl(['-H', 'content-type: application/json', '--data', '{}', `http://${l[door]}/v1/messages`]);
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body.toString()).error.type).toBe('bad_token');
    }
  });

  it('an unreadable --upstream-ca-file stops start-up: exit 2 naming the setting', async () => {
    const p = spawnCli(['serve', ...LOOPBACK_DOORS, '--db', join(dir, 'ca.db'), '--agent-gateway', '127.0.0.1:0', '--upstream-ca-file', join(dir, 'missing.pem')]);
    expect(await p.exited).toBe(2);
    expect(p.err()).toMatch(/--upstream-ca-file.*missing\.pem/);
  });

  it('a file without a PEM certificate is refused the same way', async () => {
    const bad = join(dir, 'not-a-cert.pem');
    writeFileSync(bad, 'hello\n');
    const p = spawnCli(['serve', ...LOOPBACK_DOORS, '--db', join(dir, 'ca2.db'), '--mcp-hub', '127.0.0.1:0', '--upstream-ca-file', bad]);
    await waitFor(() => p.child.exitCode !== null, 60_000, 'serve to exit');
    expect(p.child.exitCode).toBe(2);
    expect(p.err()).toMatch(/--upstream-ca-file.*no PEM certificate/);
  });
});
