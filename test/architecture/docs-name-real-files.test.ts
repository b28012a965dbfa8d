/**
 * The docs name files that exist: every `src/…` path in docs/*.md and README.md is a file or
 * folder of the repository, and every source file a doc names in backticks (`front.ts`,
 * `doors/floor/listen.ts`) is one (a template such as `src/doors/<name>/` is not a path).
 * A rename or a removal that leaves the prose behind fails here.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = [
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  'README.md',
];

/** `src/` then path characters; a trailing dot, comma or colon ends a sentence, not the path. */
const SRC_PATH = /\bsrc\/[A-Za-z0-9_./<>-]*/g;
/** A source file named in backticks, with or without its folders. */
const NAMED_FILE = /`((?:\.{1,2}\/)*[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.(?:ts|js|c|sh))`/g;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [relative(ROOT, p).split('\\').join('/')];
  });
}

const REPO_FILES = [...readdirSync(ROOT).filter((f) => statSync(join(ROOT, f)).isFile()), ...['src', 'test', 'bench', 'bin', 'deploy'].filter((d) => existsSync(join(ROOT, d))).flatMap((d) => files(join(ROOT, d)))];

/** `src/…` paths a text names that do not exist. */
function missingSrcPaths(text: string, exists: (path: string) => boolean): string[] {
  return [...text.matchAll(SRC_PATH)].map((m) => m[0].replace(/[.,:;]+$/, '')).filter((p) => !p.includes('<') && !exists(p));
}

/** Source files named in backticks that no file of the repository is (by its path, or its path's end). */
function missingNamedFiles(text: string, repoFiles: readonly string[]): string[] {
  return [...text.matchAll(NAMED_FILE)].map((m) => m[1]!.replace(/^(\.{1,2}\/)+/, '')).filter((name) => !repoFiles.some((f) => f === name || f.endsWith(`/${name}`)));
}

describe('the docs name files that exist', () => {
  it.each(DOCS)('%s: every src/… path exists', (doc) => {
    expect(missingSrcPaths(readFileSync(join(ROOT, doc), 'utf8'), (p) => existsSync(join(ROOT, p)))).toEqual([]);
  });

  it.each(DOCS)('%s: every source file named in backticks exists', (doc) => {
    expect(missingNamedFiles(readFileSync(join(ROOT, doc), 'utf8'), REPO_FILES)).toEqual([]);
  });

  it('the checks catch a stale path and a stale file name, and pass templates and sentence ends', () => {
    const text = 'See `src/doors/http-proxy.ts`, src/doors/<name>/ and src/config.ts. Also `http-front.ts` and `doors/floor/listen.ts`.';
    expect(missingSrcPaths(text, (p) => ['src/config.ts'].includes(p))).toEqual(['src/doors/http-proxy.ts']);
    expect(missingNamedFiles(text, ['src/doors/floor/listen.ts', 'src/config.ts'])).toEqual(['src/doors/http-proxy.ts', 'http-front.ts']);
  });
});
