/** Stored shapes → the JSON the API returns. */
import { type Devbox, type NetworkPolicy, egressFields } from '../policy/model.js';
import type { Blueprint } from '../store/blueprints.js';
import type { Guardrails } from '../policy/guardrails.js';
import { cidrWarnings } from '../policy/validate.js';

/**
 * With guardrails, entries this gateway will always refuse are named in `warnings` (only
 * when there are some: an extra field clients that do not know it ignore).
 */
export function policyView(p: NetworkPolicy, guardrails?: Guardrails) {
  const warnings = guardrails ? cidrWarnings(p.egress.allowed_cidrs, guardrails) : [];
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    egress: egressFields(p.egress),
    enforcement: p.enforcement,
    create_time_ms: p.create_time_ms,
    update_time_ms: p.update_time_ms,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

export function devboxView(d: Devbox) {
  return {
    id: d.id,
    name: d.name,
    status: d.status,
    create_time_ms: d.create_time_ms,
    end_time_ms: d.end_time_ms,
    launch_parameters: { network_policy_id: d.network_policy_id },
    metadata: d.metadata,
    network: { addresses: d.addresses, host_id: d.host_id ?? null },
    tunnel_key: d.tunnel_key,
    blueprint_id: d.blueprint_id ?? null,
  };
}

export function blueprintView(b: Blueprint, state: 'created' | 'deleted' = 'created') {
  return {
    id: b.id,
    name: b.name,
    create_time_ms: b.create_time_ms,
    build_finish_time_ms: b.build_finish_time_ms,
    status: b.status,
    state,
    failure_reason: b.failure_reason,
    parameters: b.parameters,
    metadata: b.metadata,
    network: { addresses: b.addresses },
  };
}
