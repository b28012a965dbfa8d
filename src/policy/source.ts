/**
 * Where policies and devboxes come from. The sqlite store implements it today; a fleet
 * follower could tomorrow. The engine only reads through this and listens for changes.
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
