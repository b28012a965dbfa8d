/**
 * One table of policy fields (EGRESS_FIELDS, src/policy/model.ts): every place a field
 * appears derives from it. For each row, whatever its kind: the stored defaults and
 * completeEgress, the API's request and response schemas (so /openapi.json), the API view,
 * the rule check, the policy-file reader and `apply`'s diff all know the field. And no
 * source file lists the fields by hand again.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type EgressRules, type FieldKind, DEFAULT_EGRESS, EGRESS_FIELDS, completeEgress } from '../../src/policy/model.js';
import { RuleError, validateEgress } from '../../src/policy/validate.js';
import { policyCreateBody, policyUpdateBody, policyView as policyViewSchema } from '../../src/api/schemas.js';
import { policyView } from '../../src/api/views.js';
import { parsePolicySpec } from '../../src/cli/policy-file.js';
import { type PolicyView, describeDiff } from '../../src/cli/apply.js';
import { MemorySource } from '../../src/policy/memory-source.js';

/** Per kind: a value a file may give, what is stored for it, a value of the wrong shape, and a rule-breaking one. */
const SAMPLES: Record<FieldKind, { file: unknown; stored: unknown; wrongShape: unknown; breaksRule: unknown }> = {
  toggle: { file: true, stored: true, wrongShape: 'yes', breaksRule: null },
  hostnames: { file: ['Example.COM.', 'example.com'], stored: ['example.com'], wrongShape: 'example.com', breaksRule: ['*.com'] },
  cidrs: { file: ['10.1.0.0/16'], stored: [{ cidr: '10.1.0.0/16' }], wrongShape: '10.1.0.0/16', breaksRule: [{ cidr: '10.1.0.1/16' }] },
};

const names = EGRESS_FIELDS.map((f) => f.name);

interface Schema {
  type?: string;
  nullable?: boolean;
  items?: unknown;
  maxItems?: number;
  description?: string;
}
const props = (s: { properties: object }) => s.properties as Record<string, Schema>;

describe('one table of policy fields: every place derives from EGRESS_FIELDS', () => {
  it("the stored defaults and completeEgress hold exactly the table's fields, in its order", () => {
    expect(Object.keys(DEFAULT_EGRESS)).toEqual(names);
    for (const f of EGRESS_FIELDS) expect(DEFAULT_EGRESS[f.name], f.name).toEqual(f.default);
    expect(Object.keys(completeEgress(DEFAULT_EGRESS, { allowed_hostnames: ['a.com'] }))).toEqual(names);
  });

  for (const f of EGRESS_FIELDS) {
    const sample = SAMPLES[f.kind];

    describe(`${f.name} (${f.kind})`, () => {
      it('is in the API schemas: the view (required), create and update bodies (nullable)', () => {
        const egress = props(policyViewSchema).egress as unknown as { properties: Record<string, Schema>; required: string[] };
        expect(egress.properties[f.name]?.description).toBe(f.description);
        expect(egress.required).toContain(f.name);
        for (const body of [policyCreateBody, policyUpdateBody]) {
          const s = props(body)[f.name];
          expect(s?.nullable, f.name).toBe(true);
          expect(s?.type).toBe(f.kind === 'toggle' ? 'boolean' : 'array');
          if ('maxItems' in f) expect(s?.maxItems).toBe(f.maxItems);
        }
      });

      it('is in the API view of a stored policy', () => {
        const p = new MemorySource().putPolicy({ egress: { [f.name]: sample.stored } as Partial<EgressRules> });
        const v = policyView(p);
        expect(Object.keys(v.egress)).toEqual(names);
        expect(v.egress[f.name]).toEqual(sample.stored);
      });

      it("goes through its kind's rule check", () => {
        expect(validateEgress({ [f.name]: sample.stored })).toEqual({ [f.name]: sample.stored });
        if (sample.breaksRule !== null) expect(() => validateEgress({ [f.name]: sample.breaksRule } as Partial<EgressRules>)).toThrow(RuleError);
      });

      it('is read from policy files, shape and rules checked, naming the field', () => {
        const spec = parsePolicySpec('p.yaml', { name: 'p', [f.name]: sample.file });
        expect(spec[f.name]).toEqual(sample.stored);
        expect(() => parsePolicySpec('p.yaml', { name: 'p', [f.name]: sample.wrongShape })).toThrow(`p.yaml: field "${f.name}" must be`);
        if (sample.breaksRule !== null) expect(() => parsePolicySpec('p.yaml', { name: 'p', [f.name]: sample.breaksRule })).toThrow(`p.yaml: ${f.name}[0]`);
        expect(() => parsePolicySpec('p.yaml', { name: 'p', nonsense: 1 })).toThrow(new RegExp(`known: .*\\b${f.name}\\b`));
      });

      it('is a change apply notices and names', () => {
        const cur: PolicyView = { id: 'npol_1', name: 'p', description: null, enforcement: 'enforce', egress: { ...DEFAULT_EGRESS } };
        const want = parsePolicySpec('p.yaml', { name: 'p', [f.name]: sample.file });
        expect(
          describeDiff(cur, want).some((w) => w.startsWith(`${f.name} `)),
          JSON.stringify(describeDiff(cur, want)),
        ).toBe(true);
        expect(describeDiff({ ...cur, egress: { ...want } }, want)).toEqual([]);
      });
    });
  }

  it('no source file lists the fields by hand (two or more field names as string literals) outside the table', () => {
    const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => {
        const p = join(dir, n);
        return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
      });
    const lists: string[] = [];
    for (const file of files(SRC)) {
      if (relative(SRC, file) === join('policy', 'model.ts')) continue;
      const text = readFileSync(file, 'utf8');
      const named = names.filter((n) => text.includes(`'${n}'`) || text.includes(`"${n}"`));
      if (named.length >= 2) lists.push(`src/${relative(SRC, file)}: ${named.join(', ')}`);
    }
    expect(lists).toEqual([]);
  });
});
