/**
 * Runs fuzz inputs through one target, outside the fuzzer, to see a finding:
 *   npx tsx test/fuzz/replay.ts <target> <file>…
 */
import { readFileSync } from 'node:fs';
import { TARGETS } from './targets.js';

const [target, ...files] = process.argv.slice(2);
if (target === undefined || !(target in TARGETS) || files.length === 0) {
  console.error(`usage: replay.ts <target> <file>…  (targets: ${Object.keys(TARGETS).join(', ')})`);
  process.exit(2);
}
const { fuzz } = (await import(`./targets/${target}.ts`)) as { fuzz: (data: Buffer) => void };
let failed = 0;
for (const f of files) {
  const data = readFileSync(f);
  try {
    fuzz(data);
    console.log(`ok    ${f}`);
  } catch (e) {
    failed++;
    console.log(`FAIL  ${f}  input ${JSON.stringify(data.toString('latin1')).slice(0, 400)}\n      ${(e as Error).stack}`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
