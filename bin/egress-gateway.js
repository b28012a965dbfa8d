#!/usr/bin/env node
// The `egress-gateway` command: runs the TypeScript sources in this process through tsx's
// loader (a dependency, so `npm ci` is enough), or the compiled build when there is no src/.
// One process, no wrapper child: signals reach the gateway itself.
import { existsSync } from 'node:fs';

const src = new URL('../src/main.ts', import.meta.url);
if (existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(src.href);
} else {
  await import(new URL('../dist/src/main.js', import.meta.url).href);
}
