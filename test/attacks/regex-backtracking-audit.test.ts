/**
 * Threat: a regex that backtracks on attacker bytes (the header-line regex of the raw HTTP
 * front spent ~0.6 s per 32 KB head of spaces, stalling every door). No regex in src/ may
 * have adjacent or nested unbounded quantifiers over overlapping characters; the check
 * itself is pinned on the patterns it must catch.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { regexLiterals, regexProblems } from '../support/regex-audit.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The header-line regex the raw front used before (quadratic on `a: <30 KB of spaces>x `). */
const OLD_HEADER_LINE = String.raw`^([!#$%&'*+\-.^_\`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*$`;

describe('the regex audit', () => {
  it.each([
    ['the old header-line regex', OLD_HEADER_LINE],
    ['adjacent overlapping runs', String.raw`^\s*.*\s*$`],
    ['an optional part between two runs', '^a+b?a+$'],
    ['nested runs', '^(a+)+$'],
    ['a large bound counts as unbounded', '^[a-z]{1,1000}[a-z0-9]{1,1000}$'],
    ['inside a group', '^x(?:[0-9]*[0-9]+)y$'],
  ])('flags %s', (_name, source) => {
    expect(regexProblems(source)).not.toEqual([]);
  });

  it.each([
    ['separated runs', String.raw`^([A-Z]{1,16}) ([\x21-\x7e]{1,8192}) HTTP\/1\.1$`],
    ['disjoint runs', '^[a-z]+[0-9]+$'],
    ['a status line', String.raw`^HTTP\/1\.[01] ([1-9]\d\d)(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$`],
    ['one run', String.raw`^\d{1,15}$`],
  ])('passes %s', (_name, source) => {
    expect(regexProblems(source)).toEqual([]);
  });

  it('finds regex literals and ignores strings, comments and division', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: source text with a template literal in it, on purpose
    const text = "const a = /x+y/g; // not /this/\nconst s = '/not/'; const d = n / 2 / 3;\nconst t = `${/in+/.test(q)}`;\nif (!/^z$/.test(v)) return /a*b*/;";
    expect(regexLiterals(text).map((r) => r.source)).toEqual(['x+y', 'in+', '^z$', 'a*b*']);
  });
});

describe('src/ has no backtracking-prone regex', () => {
  const files = sources(join(ROOT, 'src'));
  const literals = files.flatMap((f) => regexLiterals(readFileSync(f, 'utf8')).map((r) => ({ ...r, file: relative(ROOT, f) })));

  it('found the regexes to check', () => {
    expect(literals.length).toBeGreaterThan(10);
  });

  it('no regex literal in src/ has adjacent or nested unbounded quantifiers', () => {
    const bad = literals.map((r) => ({ at: `${r.file}:${r.line} /${r.source}/${r.flags}`, problems: regexProblems(r.source, r.flags) })).filter((r) => r.problems.length > 0);
    expect(bad).toEqual([]);
  });

  it('no RegExp is built at run time from strings (they would escape this check)', () => {
    const dynamic = files.filter((f) => /\bnew RegExp\(|\bRegExp\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(ROOT, f));
    expect(dynamic).toEqual([]);
  });
});
