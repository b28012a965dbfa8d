/**
 * The store's shared vocabulary (types.ts) and, under the names many files import, the sqlite
 * store (sqlite/store.ts). New code imports what it uses from its own file: `openSqliteStore`
 * and `SqliteStore` from sqlite/store.ts, the API's view from backend.ts and open.ts.
 */
export * from './types.js';
export { CHANGE_LOG_KEEP, type OpenOptions, openSqliteStore, openSqliteStore as openStore, type SqliteStore, type SqliteStore as Store } from './sqlite/store.js';
