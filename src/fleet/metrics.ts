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
  help: 'The outbox seq this replica has seen published contiguously (the bucket watermark)',
  registers: [registry],
});

export const fleetSnapshots = new Counter({
  name: 'egress_fleet_republish_total',
  help: 'Full snapshots republished because the outbox no longer held the changes after the watermark',
  registers: [registry],
});

/** Set by the follower (sidecar); collected on scrape. */
export const followerGauges = {
  age: new Gauge({ name: 'egress_policy_snapshot_age_seconds', help: 'Seconds since the sidecar last knew its policy snapshot current (live on NATS)', registers: [registry] }),
  revision: new Gauge({ name: 'egress_policy_snapshot_revision', help: 'KV revision (stream sequence) of the last bucket entry applied to the local snapshot', registers: [registry] }),
  seq: new Gauge({ name: 'egress_policy_snapshot_seq', help: 'Highest control-plane change seq applied to the local snapshot', registers: [registry] }),
  lag: new Gauge({ name: 'egress_policy_snapshot_lag', help: 'Bucket entries for this host delivered by NATS but not yet applied (0 when caught up)', registers: [registry] }),
  connected: new Gauge({ name: 'egress_policy_follow_connected', help: '1 while the sidecar is connected to NATS and watching the bucket', registers: [registry] }),
  resyncs: new Counter({ name: 'egress_policy_resyncs_total', help: 'Full resyncs: the bucket read whole and swapped into the local snapshot in one transaction', registers: [registry] }),
  applied: new Counter({ name: 'egress_policy_updates_applied_total', help: 'Bucket entries applied to the local snapshot one by one after a resync', registers: [registry] }),
};
