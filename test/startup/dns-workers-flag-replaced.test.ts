/**
 * `--dns-workers` was replaced by `--workers` (every door in N processes, not DNS over UDP
 * alone in N more): a deployment still passing it is refused at start-up, exit 2, with a
 * message that names the flag that replaced it, rather than quietly running another shape.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, spawnCli } from '../support/serve-process.js';

afterAll(killAll);

describe('--dns-workers', { timeout: 60_000 }, () => {
  it('is refused at start-up with the flag that replaced it', async () => {
    const p = spawnCli(['serve', '--dns-workers', '2', '--db', ':memory:']);
    expect(await p.exited).toBe(2);
    expect(p.err()).toContain('--dns-workers: was replaced by --workers N');
    expect(p.err()).toContain('use --workers 3');
  });

  it('is refused from the environment too', async () => {
    const p = spawnCli(['serve', '--db', ':memory:'], { EGRESS_DNS_WORKERS: '1' });
    expect(await p.exited).toBe(2);
    expect(p.err()).toContain('--dns-workers: was replaced by --workers N');
  });
});
