/**
 * The settings table of docs/configuration.md, generated from the OPTIONS table in
 * src/config.ts — the table `serve --help` is generated from too — so the two cannot disagree
 * (test/architecture/help-and-docs.test.ts compares them). After changing a setting:
 *   npx tsx test/support/options-table.ts --write
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OPTIONS, REPEATABLE, defaultText, envName } from '../../src/config.js';
import { isRemoved } from '../../src/cli/program.js';

export const DOC = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));
export const START = '<!-- settings table: generated from OPTIONS in src/config.ts by `npx tsx test/support/options-table.ts --write` -->';
export const END = '<!-- end of the settings table -->';

/** Defaults that depend on the machine --help runs on, as the docs state them. */
const DOC_DEFAULTS: Readonly<Record<string, string>> = {
  'upstream-dns': 'nameservers in /etc/resolv.conf',
};

/** What the docs add after a setting's help text (links, consequences). */
const DOC_NOTES: Readonly<Record<string, string>> = {
  db: 'see [below](#the-store---db)',
  'api-token': 'exactly the configured set (a token removed is revoked at the next start; see [tokens](operations.md#api-tokens))',
  workers: 'what each process costs: [Operations: processes](operations.md#processes-and-cores)',
};

const cell = (s: string) => s.replaceAll('|', '\\|');

export function optionsTable(): string {
  const rows = ['| flag | env | default | what |', '|---|---|---|---|'];
  for (const o of OPTIONS) {
    if (isRemoved(o)) continue;
    const repeat = REPEATABLE.has(o.flag) && !o.help.includes('repeatable') ? ', repeatable' : '';
    const note = DOC_NOTES[o.flag];
    rows.push(`| \`--${o.flag}\` | \`${envName(o)}\` | ${cell(DOC_DEFAULTS[o.flag] ?? defaultText(o))} | ${cell(o.help + repeat)}${note ? `; ${note}` : ''} |`);
  }
  return rows.join('\n');
}

/** The table as docs/configuration.md has it now, or null without the markers. */
export function documentedTable(text = readFileSync(DOC, 'utf8')): string | null {
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a === -1 || b === -1 || b < a) return null;
  return text.slice(a + START.length, b).trim();
}

if (process.argv.includes('--write')) {
  const text = readFileSync(DOC, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a === -1 || b === -1) throw new Error(`${DOC}: no ${START} … ${END} markers`);
  writeFileSync(DOC, `${text.slice(0, a + START.length)}\n\n${optionsTable()}\n\n${text.slice(b)}`);
  process.stdout.write(`wrote the settings table of ${DOC}\n`);
}
