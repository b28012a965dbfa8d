/**
 * `npm run bench -- --write` replaces bench/RESULTS.md but carries over its hand-kept
 * "Earlier runs" section (the runs docs/ quote); the tracked file has one.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { extractMarkdown, keptTail } from '../../bench/all.js';

describe('bench/RESULTS.md', () => {
  it('keeps the Earlier runs section, and only it', () => {
    const file = '# Benchmark results\n\n## decide\n\n| a |\n|---|\n| 1 |\n\n## Earlier runs\n\nby hand\n\n| b |\n|---|\n| 2 |\n';
    expect(keptTail(file)).toBe('## Earlier runs\n\nby hand\n\n| b |\n|---|\n| 2 |');
    expect(keptTail('# Benchmark results\n\n## decide\n')).toBe('');
  });

  it('the tracked file has the section docs/ link to', () => {
    expect(keptTail(readFileSync('bench/RESULTS.md', 'utf8'))).toMatch(/^## Earlier runs\n/);
  });

  it('collects the tables a script prints, dropping other lines', () => {
    const md = extractMarkdown('warming up\n# Title\n| x |\n|---|\n| 1 |\nnoise\n');
    expect(md.tables).toBe(1);
    expect(md.text).toBe('### Title\n\n| x |\n|---|\n| 1 |');
  });
});
