/**
 * Issue 24 (one name per thing): each command's --help lists only the settings that command
 * reads (before, `check --help` printed every `serve` flag), a removed setting is listed
 * nowhere, and the settings table of docs/configuration.md is the one --help is generated
 * from (OPTIONS in src/config.ts), so a setting changed in one place cannot disagree with the
 * other: `npx tsx test/support/options-table.ts --write` regenerates the docs table.
 */
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { OPTIONS, envName } from '../../src/config.js';
import { COMMAND_SETTINGS, buildProgram, isRemoved } from '../../src/cli/program.js';
import { documentedTable, optionsTable } from '../support/options-table.js';

const SETTING_FLAGS = new Set(OPTIONS.map((o) => `--${o.flag}`));

function help(name: string): string {
  const cmd = buildProgram().commands.find((c: Command) => c.name() === name);
  if (!cmd) throw new Error(`no command ${name}`);
  return cmd.helpInformation();
}

/** The setting flags a help text lists. */
const settingFlags = (text: string) => new Set([...text.matchAll(/^\s+(--[a-z0-9-]+)\b/gm)].map((m) => m[1]!).filter((f) => SETTING_FLAGS.has(f)));

describe('help and docs come from one table', () => {
  it('docs/configuration.md holds the settings table generated from OPTIONS', () => {
    expect(documentedTable(), 'regenerate: npx tsx test/support/options-table.ts --write').toBe(optionsTable());
  });

  it('serve --help lists every setting but the removed ones, with its help text and env name', () => {
    const text = help('serve').replace(/\s+/g, ' ');
    const listed = settingFlags(help('serve'));
    for (const o of OPTIONS) {
      expect(listed.has(`--${o.flag}`), `--${o.flag}`).toBe(!isRemoved(o));
      if (isRemoved(o)) continue;
      expect(text).toContain(o.help.replace(/\s+/g, ' '));
      expect(text).toContain(`[env ${envName(o)}]`);
    }
    expect(text).not.toContain('--dns-workers');
  });

  it.each(Object.entries(COMMAND_SETTINGS))('%s --help lists only the settings it reads', (name, keys) => {
    const want = new Set(OPTIONS.filter((o) => keys.includes(o.key)).map((o) => `--${o.flag}`));
    expect(settingFlags(help(name))).toEqual(want);
  });

  it("apply, suggest and bench list no setting of serve (bench's --dns is its own: the DNS door to load)", () => {
    expect([...settingFlags(help('apply'))]).toEqual([]);
    expect([...settingFlags(help('suggest'))]).toEqual([]);
    expect([...settingFlags(help('bench'))]).toEqual(['--dns']);
    expect(help('bench')).toMatch(/--dns <host:port>\s+DNS door to load/);
  });

  it('the token variable has one name in help: RUNLOOP_API_KEY', () => {
    for (const name of ['apply', 'suggest']) {
      expect(help(name)).toContain('[env RUNLOOP_API_KEY]');
      expect(help(name)).not.toContain('EGRESS_TOKEN');
    }
  });
});
