/**
 * Transparent TLS (--transparent-tls), for traffic the host's firewall redirects here (the
 * original destination address is gone after the redirect, so the name the client sends
 * decides): the ClientHello's SNI is decided, resolved through the gateway's resolver and
 * spliced to port 443 of the checked address; every further ClientHello before the server's
 * ServerHello is held to the same name (spliceJudged). No SNI, a malformed hello, a denial
 * (or, with --tls-ech refuse, a hello with ECH): a TLS alert, then close. (Transparent HTTP
 * is the HTTP door without proxy form.)
 */
import net from 'node:net';
import type { HostPort } from '../../config.js';
import type { DoorContext, RunningDoor } from '../floor/context.js';

/** What the transparent TLS door uses of the gateway. */
export type TlsDoorContext = DoorContext<'config' | 'engine' | 'gate' | 'tracker' | 'log' | 'sourceLimit', TunnelSetting | 'transparentTlsUpstreamPort'>;
import { closeServer, listenDoor } from '../floor/listen.js';
import { denial } from '../../policy/decision.js';
import { protocolErrors, tlsEchTotal } from '../../metrics.js';
import { ALERT_ACCESS_DENIED, ALERT_DECODE_ERROR, ALERT_HANDSHAKE_FAILURE, ALERT_UNRECOGNIZED_NAME, tlsAlert } from '../floor/clienthello.js';
import { readFirstFlight, refuseHello, spliceJudged } from '../floor/tls-name-rule.js';
import { Tunnel, type TunnelSetting } from '../floor/tunnel.js';

/** The port a redirected devbox connection was meant for (decisions and logs name it). */
const TRANSPARENT_TLS_PORT = 443;

function closeWithAlert(sock: net.Socket, alert: number): void {
  if (!sock.writable) {
    sock.destroy();
    return;
  }
  sock.end(tlsAlert(alert), () => sock.destroy());
  sock.resume();
}

async function handleTls(ctx: TlsDoorContext, sock: net.Socket): Promise<void> {
  sock.on('error', () => sock.destroy());
  const identity = ctx.engine.identifyByAddress(sock.remoteAddress ?? '');
  const { buf, result } = await readFirstFlight(sock, null, ctx.config.headerTimeoutMs, true);
  if (sock.destroyed) return;
  if (typeof result === 'string') {
    if (result !== 'closed') protocolErrors.labels('transparent-tls', result === 'not_tls' ? 'not_tls' : 'client_hello').inc();
    if (result === 'closed') sock.destroy();
    else closeWithAlert(sock, ALERT_DECODE_ERROR);
    return;
  }
  if (result.ech) tlsEchTotal.labels('transparent-tls').inc();
  if (result.ech && ctx.config.tlsEch === 'refuse') {
    refuseHello(ctx, identity, 'transparent-tls', TRANSPARENT_TLS_PORT, 'ech_refused', result);
    closeWithAlert(sock, ALERT_ACCESS_DENIED);
    return;
  }
  if (result.sni === null) {
    ctx.gate.record(identity, 'transparent-tls', denial('invalid_host', '', undefined, 'invalid'), TRANSPARENT_TLS_PORT);
    protocolErrors.labels('transparent-tls', 'no_sni').inc();
    closeWithAlert(sock, ALERT_UNRECOGNIZED_NAME);
    return;
  }
  const host = result.sni;
  const a = ctx.gate.admitNow(identity, host, TRANSPARENT_TLS_PORT, 'transparent-tls');
  const admission = a instanceof Promise ? await a : a;
  if (!admission.ok) {
    closeWithAlert(sock, admission.error === 'denied' ? ALERT_ACCESS_DENIED : ALERT_UNRECOGNIZED_NAME);
    return;
  }
  if (sock.destroyed) return;
  const tunnel = Tunnel.open(ctx, sock, { door: 'transparent-tls', identity, decision: admission.decision, host, port: TRANSPARENT_TLS_PORT });
  if (tunnel === null) {
    closeWithAlert(sock, ALERT_HANDSHAKE_FAILURE);
    return;
  }
  const err = await tunnel.connect(admission.address, ctx.config.transparentTlsUpstreamPort);
  if (err) {
    tunnel.close(err.code, tlsAlert(ALERT_HANDSHAKE_FAILURE));
    return;
  }
  spliceJudged(tunnel, buf!, result);
}

export async function startTransparentTls(ctx: TlsDoorContext, at: HostPort): Promise<RunningDoor> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (sock) => {
    if (!ctx.sourceLimit.admit(sock, 'transparent-tls')) return;
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    handleTls(ctx, sock).catch((e: unknown) => {
      ctx.log.error({ err: e }, 'transparent TLS failed');
      sock.destroy();
    });
  });
  const address = await listenDoor(server, at, '--transparent-tls', (e) => ctx.log.error({ err: e, door: 'transparent-tls' }, 'listener error'));
  return {
    name: 'transparent-tls',
    address,
    close: (graceMs) => closeServer(server, sockets, graceMs),
  };
}
