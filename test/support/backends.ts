/**
 * A fresh control store on either backend, for the tests that pin one rule on both: sqlite in a
 * temporary folder (removed after the file, test/support/temp.ts), PostgreSQL as a new
 * database on the run's shared server.
 */
import { join } from 'node:path';
import type { ControlStore } from '../../src/store/backend.js';
import { openControlStore } from '../../src/store/open.js';
import { sharedPostgres } from './postgres.js';
import { tempDir } from './temp.js';

export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

export async function openBackend(backend: Backend, name: string): Promise<ControlStore> {
  if (backend === 'postgres') return openControlStore(await (await sharedPostgres()).createDatabase());
  return openControlStore(join(tempDir(name), 'egress.db'));
}
