/**
 * WebSocket (and other) upgrades: a Tunnel after the same decision as any request, the
 * request head sent upstream, and both directions spliced only once the origin answered
 * `101` (any other answer is relayed and the connection ends).
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type http from 'node:http';
import type { Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { endSocket, rawDenial, rawError } from '../floor/denial.js';
import { Tunnel, type TunnelSetting } from '../floor/tunnel.js';
import type { DoorContext } from '../floor/context.js';
import { ByteAppender } from '../../byte-appender.js';
import { blankSearched, parseResponseHead } from './framing.js';
import { filterHeaders, hasHost, requestHeadText } from './headers.js';
import type { HttpTarget } from './target.js';

/** What an upgrade uses of the gateway: a tunnel's parts and the longest answer head. */
type UpgradeContext = DoorContext<'tracker' | 'gate' | 'engine' | 'config', TunnelSetting | 'maxHeaderBytes'>;

/**
 * An upgrade (WebSocket): same decision, then the request head goes upstream and only the
 * origin's answer is read. A `101` is relayed and both directions spliced; any other
 * answer is relayed and the connection ends: nothing more of the client reaches the origin
 * (else a keep-alive origin would take the client's next request, for any Host, undecided).
 */
export async function upgrade(ctx: UpgradeContext, door: Door, req: http.IncomingMessage, socket: Duplex, head: Buffer, identity: Identity, t: HttpTarget): Promise<void> {
  const a = ctx.gate.admitNow(identity, t.host, t.port, door);
  const admission = a instanceof Promise ? await a : a;
  if (!admission.ok) {
    endSocket(socket, admission.error === 'denied' ? rawDenial(admission.decision, t.port) : rawError(502, `cannot resolve ${t.host}: ${admission.detail}`));
    return;
  }
  if (socket.destroyed) return;
  const tunnel = Tunnel.open(ctx, socket as net.Socket, { door, identity, decision: admission.decision, host: t.host, port: t.port });
  if (tunnel === null) {
    endSocket(socket, rawError(503, 'too many open connections for this devbox'));
    return;
  }
  const err = await tunnel.connect(admission.address);
  if (err) {
    tunnel.close(err.code, rawError(err.status, `upstream ${t.host}:${t.port}: ${err.code}`));
    return;
  }
  const headers = filterHeaders(req.rawHeaders, true);
  if (!hasHost(headers)) headers.push('Host', t.hostHeader);
  tunnel.upstream!.write(Buffer.from(requestHeadText(req.method ?? 'GET', t.path, headers, ''), 'latin1'));
  awaitUpgradeAnswer(ctx, tunnel, head, req.method === 'HEAD', `${t.host}:${t.port}`);
}

/**
 * After an upgrade request went upstream: reads the origin's answer (heads bounded by
 * maxHeaderBytes, within headerTimeoutMs) while the client's bytes stay unread. `101` →
 * relay it and splice both ways (with `clientHead`, what the client sent after its request).
 * Another final status → relay that response (until its Content-Length is met or the
 * origin ends) and end; the client → origin direction is never started. Interim 1xx heads
 * are relayed with the answer. A malformed or oversized head → 502; silence → 504.
 */
function awaitUpgradeAnswer(ctx: UpgradeContext, tunnel: Tunnel, clientHead: Buffer, headRequest: boolean, target: string): void {
  const client = tunnel.client;
  const up = tunnel.upstream!;
  const max = ctx.config.maxHeaderBytes;
  let buf: Buffer | null = null;
  /** Where the next head starts in buf (past relayed interim 1xx heads). */
  let at = 0;
  /** How far the head at `at` was already searched for its end. */
  let searched = 0;
  const headBytes = new ByteAppender();
  /** Body bytes still to relay after a non-101 answer; null while reading heads. */
  let bodyLeft: number | null = null;
  const timer = setTimeout(() => {
    if (bodyLeft === null) tunnel.close('upstream_header_timeout', rawError(504, `upstream ${target}: no response to the upgrade request`));
  }, ctx.config.headerTimeoutMs);
  client.once('close', () => clearTimeout(timer));
  const onDrain = () => {
    if (!tunnel.closed) up.resume();
  };

  const relayBody = (chunk: Buffer) => {
    if (chunk.length >= bodyLeft!) {
      tunnel.end(chunk.subarray(0, bodyLeft!));
      return;
    }
    bodyLeft! -= chunk.length;
    if (!client.write(chunk)) {
      up.pause();
      client.once('drain', onDrain);
    }
  };

  tunnel.readDownstream((chunk) => {
    if (bodyLeft !== null) {
      // Relaying a refused upgrade's response; the origin ending completes it.
      if (chunk === null) tunnel.end();
      else relayBody(chunk);
      return;
    }
    if (chunk === null) {
      clearTimeout(timer);
      tunnel.close('upstream_closed', rawError(502, `upstream ${target}: closed without answering the upgrade request`));
      return;
    }
    buf = headBytes.append(buf, chunk);
    for (;;) {
      const r = parseResponseHead(buf, at, max, searched);
      if (r === 'incomplete') {
        searched = blankSearched(buf, at);
        return;
      }
      if (r === 'malformed') {
        clearTimeout(timer);
        tunnel.close('bad_upstream_response', rawError(502, `upstream ${target}: malformed response to the upgrade request`));
        return;
      }
      if (r.status === 101) {
        clearTimeout(timer);
        client.write(buf);
        tunnel.splice(clientHead.length > 0 ? clientHead : null);
        return;
      }
      if (r.status < 200) {
        at = r.end; // interim (103 Early Hints, …): relayed with the final answer
        continue;
      }
      // Refused: relay the answer, send the origin nothing more (the half-close also tells a
      // keep-alive origin to close once it has answered).
      clearTimeout(timer);
      up.end();
      const noBody = headRequest || r.status === 204 || r.status === 304;
      bodyLeft = noBody ? 0 : typeof r.length === 'number' ? r.length : Infinity;
      const headBytes = buf.subarray(0, r.end);
      client.setTimeout(ctx.config.idleTimeoutMs, () => tunnel.close('idle_timeout'));
      if (bodyLeft === 0) {
        tunnel.end(headBytes);
        return;
      }
      client.write(headBytes);
      if (buf.length > r.end) relayBody(buf.subarray(r.end));
      buf = null;
      return;
    }
  });
}
