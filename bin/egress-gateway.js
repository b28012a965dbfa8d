#!/usr/bin/env node
// The `egress-gateway` command: runs the compiled build in dist/ (made once by `npm ci`
// through the `prepare` script, or by `npm run build`); no transpiler at run time.
// One process, no wrapper child: signals reach the gateway itself.
import { existsSync, readdirSync, statSync } from 'node:fs';

const main = new URL('../dist/src/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('egress-gateway: no build in dist/: run `npm run build` (npm ci runs it)\n');
  process.exit(1);
}
// In a checkout (src/ beside dist/), say so when a source file changed after the build.
const src = new URL('../src/', import.meta.url);
if (existsSync(src)) {
  const built = statSync(main).mtimeMs;
  const stale = readdirSync(src, { recursive: true }).find((f) => String(f).endsWith('.ts') && statSync(new URL(String(f), src)).mtimeMs > built);
  if (stale !== undefined) process.stderr.write(`egress-gateway: src/${stale} is newer than the build in dist/: run \`npm run build\`\n`);
}
await import(main.href);
