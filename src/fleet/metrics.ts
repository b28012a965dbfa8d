/** Fleet-mode metrics (docs/operations.md): the publisher's progress and the sidecar's snapshot. */
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';

export const fleetPublished = new Counter({
  name: 'egress_fleet_published_total',
  help: 'Changes this control-plane replica wrote into the fleet KV bucket (or found already there)',
  registers: [registry],
});

export const fleetPublishedSeq = new Gauge({
  name: 'egress_fleet_published_seq',
  help: "The fleet's published seq: the bucket watermark as this replica last read it (every replica, publishing or not)",
  registers: [registry],
});

export const fleetSnapshots = new Counter({
  name: 'egress_fleet_republish_total',
  help: 'Full snapshots republished because the outbox no longer held the changes after the watermark',
  registers: [registry],
});

export const fleetEpoch = new Gauge({
  name: 'egress_fleet_epoch',
  help: 'The fleet epoch this replica publishes in (a new one after a bucket loss or a database restore)',
  registers: [registry],
});

export const fleetForgeries = new Counter({
  name: 'egress_fleet_forged_entries_total',
  help: 'Bucket entries written by no trusted publisher, seen by this replica (each makes it republish the database over them)',
  registers: [registry],
});

export const fleetDeadLetters = new Counter({
  name: 'egress_fleet_dead_letters_total',
  help: 'Changes that could not be published (larger than NATS carries): withheld on the sidecars, recorded under dead.<key>',
  labelNames: ['kind'],
  registers: [registry],
});

let ageSource: (() => number) | null = null;
/** The follower's age in seconds, read at every scrape. */
export function setAgeSource(f: () => number): void {
  ageSource = f;
}

/** Set by the follower (sidecar); collected on scrape. */
export const followerGauges = {
  age: new Gauge({
    name: 'egress_policy_snapshot_age_seconds',
    help: "Seconds since the newest control-plane heartbeat this sidecar applied (grows when the database, every publisher, NATS or the sidecar's link is away)",
    registers: [registry],
    // Computed at scrape: the same figure /readyz judges by.
    collect() {
      if (ageSource !== null) this.set(ageSource());
    },
  }),
  epoch: new Gauge({ name: 'egress_policy_snapshot_epoch', help: 'The fleet epoch of the local snapshot', registers: [registry] }),
  refused: new Counter({ name: 'egress_policy_entries_refused_total', help: 'Bucket entries or snapshots the sidecar refused', labelNames: ['reason'], registers: [registry] }),
  revision: new Gauge({ name: 'egress_policy_snapshot_revision', help: 'KV revision (stream sequence) of the last bucket entry applied to the local snapshot', registers: [registry] }),
  seq: new Gauge({ name: 'egress_policy_snapshot_seq', help: 'Highest control-plane change seq applied to the local snapshot', registers: [registry] }),
  lag: new Gauge({ name: 'egress_policy_snapshot_lag', help: 'Bucket entries for this host delivered by NATS but not yet applied (0 when caught up)', registers: [registry] }),
  connected: new Gauge({ name: 'egress_policy_follow_connected', help: '1 while the sidecar is connected to NATS and watching the bucket', registers: [registry] }),
  resyncs: new Counter({ name: 'egress_policy_resyncs_total', help: 'Full resyncs: the bucket read whole and swapped into the local snapshot in one transaction', registers: [registry] }),
  resumes: new Counter({ name: 'egress_policy_resumes_total', help: 'Reconnections that resumed each watch from the stored revision + 1 (no relist)', registers: [registry] }),
  applied: new Counter({ name: 'egress_policy_updates_applied_total', help: 'Bucket entries applied to the local snapshot one by one after a resync', registers: [registry] }),
};
