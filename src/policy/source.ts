/**
 * Where policies and devboxes come from: the sqlite store (also a fleet sidecar's local
 * snapshot), or for PostgreSQL the in-memory copy following its change feed. The engine only
 * reads through this and listens for changes.
 */
import type { Devbox, NetworkPolicy } from './model.js';

export type SourceChange = { kind: 'policy'; id: string; accountId: string } | { kind: 'devbox'; id: string; accountId: string };

export interface PolicySource {
  getPolicy(id: string): NetworkPolicy | undefined;
  getDevbox(id: string): Devbox | undefined;
  /** Every devbox whose status is `running`. */
  runningDevboxes(): Devbox[];
  onChange(listener: (change: SourceChange) => void): () => void;
}
