/**
 * SOCKS5 door (RFC 1928 CONNECT, RFC 1929 username/password).
 *
 * Method choice: username/password whenever the client offers it (credentials beat the
 * source address, as in every door); otherwise no-auth, and the identity is the source
 * address of a running devbox. An unknown source with no credentials is not refused at
 * the greeting: its request goes through the same decide(), which denies it as
 * `unknown_client` (reply 0x02), so the refusal is counted and logged with the
 * destination it wanted, like any other denial. A client offering neither method gets
 * 0xFF. Wrong credentials get RFC 1929 status 0x01 and the connection is closed.
 *
 * Only CONNECT is served; BIND and UDP ASSOCIATE get 0x07, unknown address types 0x08.
 * Names are resolved by the Gate through the gateway's resolver and the gateway dials
 * exactly the address it checked.
 */
import net from 'node:net';
import type { HostPort } from '../../config.js';
import type { DoorContext, RunningDoor } from '../floor/context.js';

/** What the SOCKS5 door uses of the gateway. */
export type SocksContext = DoorContext<'config' | 'engine' | 'gate' | 'tracker' | 'log' | 'sourceLimit', TunnelSetting>;
import { closeServer, listenDoor } from '../floor/listen.js';
import { type Door, denial } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import type { Admission } from '../floor/gate.js';
import { protocolErrors } from '../../metrics.js';
import { Tunnel, type TunnelSetting } from '../floor/tunnel.js';
import { spliceWithSniCheck } from '../floor/tls-name-rule.js';
import { type ConnectRequest, type ProtocolErrorKind, type ReplyCode, DEFAULT_MAX_HANDSHAKE_BYTES, METHOD_NONE_ACCEPTABLE, METHOD_NO_AUTH, METHOD_USER_PASS, Reply, Socks5Parser, authReply, methodReply, replyMessage } from './parser.js';

const DOOR: Door = 'socks5';

/** Client sockets the SOCKS doors of this process hold open (handshaking or relaying). */
let liveClients = 0;
export function socksLiveClients(): number {
  return liveClients;
}

/** Maps a dial error to the RFC 1928 reply the client gets. */
export function connectErrorReply(code: string | undefined): ReplyCode {
  switch (code) {
    case 'ECONNREFUSED':
      return Reply.connectionRefused;
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
      return Reply.hostUnreachable;
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return Reply.networkUnreachable;
    case 'ETIMEDOUT':
      return Reply.ttlExpired;
    default:
      return Reply.generalFailure;
  }
}

type State = 'greeting' | 'auth' | 'request' | 'admitting' | 'connecting' | 'open' | 'closing' | 'closed';

class SocksSession {
  private state: State = 'greeting';
  private readonly parser = new Socks5Parser();
  private handshakeTimer: NodeJS.Timeout | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private credentialIdentity: Identity | null = null;
  private tunnel: Tunnel | null = null;
  private clientClosed = false;
  private finished = false;
  /** True while admit() awaits the Gate (the session must not be finished under it). */
  private admitting = false;

  constructor(
    private readonly ctx: SocksContext,
    private readonly client: net.Socket,
    private readonly onGone: (s: SocksSession) => void,
  ) {}

  get handshaking(): boolean {
    return this.state === 'greeting' || this.state === 'auth' || this.state === 'request';
  }

  start(): void {
    const c = this.client;
    c.setNoDelay(true);
    c.on('error', () => {}); // the close that follows ends the session (a Tunnel records the error)
    c.on('close', () => this.onClientClose());
    c.on('data', this.onHandshakeData);
    c.on('end', this.onHandshakeEnd);
    this.handshakeTimer = setTimeout(() => this.protocolError('handshake_timeout', null), this.ctx.config.headerTimeoutMs);
  }

  /** Closes everything now (shutdown). */
  destroy(reason = 'shutdown'): void {
    if (this.tunnel) this.tunnel.close(reason);
    else this.client.destroy();
  }

  // ── handshake ───────────────────────────────────────────────────────────────

  private readonly onHandshakeData = (chunk: Buffer): void => {
    if (!this.handshaking) return;
    this.parser.push(chunk);
    try {
      this.advance();
    } catch (e) {
      // Never let one client's input take the process down.
      this.ctx.log.error({ event: 'socks_handshake_failed', err: (e as Error).message }, 'SOCKS5 handshake failed');
      this.state = 'closed';
      this.client.destroy();
      return;
    }
    // Every handshake message is framed (at most 513 bytes), so a client still
    // handshaking with more than the bound buffered is not speaking SOCKS5.
    if (this.handshaking && this.parser.buffered > DEFAULT_MAX_HANDSHAKE_BYTES) this.protocolError('handshake_too_large', null);
  };

  private readonly onHandshakeEnd = (): void => {
    if (!this.handshaking) return;
    if (this.parser.buffered > 0) this.countProtocolError('truncated');
    this.state = 'closed';
    this.client.destroy();
  };

  private advance(): void {
    for (;;) {
      if (this.state === 'greeting') {
        const step = this.parser.greeting();
        if (step.type === 'need') return;
        if (step.type === 'error') return this.protocolError(step.kind, step.reply);
        const methods = step.message.methods;
        const method = methods.includes(METHOD_USER_PASS) ? METHOD_USER_PASS : methods.includes(METHOD_NO_AUTH) ? METHOD_NO_AUTH : METHOD_NONE_ACCEPTABLE;
        if (method === METHOD_NONE_ACCEPTABLE) {
          this.countProtocolError('no_acceptable_method');
          return this.closeWith(methodReply(METHOD_NONE_ACCEPTABLE));
        }
        this.client.write(methodReply(method));
        this.state = method === METHOD_USER_PASS ? 'auth' : 'request';
      } else if (this.state === 'auth') {
        const step = this.parser.auth();
        if (step.type === 'need') return;
        if (step.type === 'error') {
          this.countProtocolError(step.kind);
          return this.closeWith(authReply(false));
        }
        const { username, password } = step.message;
        const source = this.client.remoteAddress ?? '';
        const identity = this.ctx.engine.identifyByCredentials(username, password, source);
        if (identity === null) {
          const who: Identity = { devboxId: null, via: 'none', source: source.startsWith('::ffff:') ? source.slice(7) : source };
          this.ctx.log.debug({ event: 'socks_auth_failed', source: who.source, username }, 'SOCKS5 authentication failed');
          this.ctx.gate.record(who, DOOR, denial('unknown_client', ''), 0);
          return this.closeWith(authReply(false));
        }
        this.credentialIdentity = identity;
        this.client.write(authReply(true));
        this.state = 'request';
      } else if (this.state === 'request') {
        const step = this.parser.request();
        if (step.type === 'need') return;
        if (step.type === 'error') return this.protocolError(step.kind, step.reply);
        this.endHandshake();
        void this.admit(step.message);
        return;
      } else {
        return;
      }
    }
  }

  private endHandshake(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.client.off('data', this.onHandshakeData);
    this.client.off('end', this.onHandshakeEnd);
    this.client.pause();
    this.state = 'admitting';
  }

  private countProtocolError(kind: ProtocolErrorKind | 'no_acceptable_method'): void {
    protocolErrors.labels(DOOR, kind).inc();
    this.ctx.log.debug({ event: 'protocol_error', door: DOOR, kind, source: this.client.remoteAddress }, 'SOCKS5 protocol error');
  }

  private protocolError(kind: ProtocolErrorKind, reply: ReplyCode | null): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.countProtocolError(kind);
    if (reply === null) {
      this.state = 'closed';
      this.client.destroy();
    } else {
      this.closeWith(replyMessage(reply));
    }
  }

  /** Sends a last message, half-closes, and destroys shortly after if the client lingers. */
  private closeWith(bytes: Buffer): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.client.off('data', this.onHandshakeData);
    this.state = 'closing';
    // Keep reading (and dropping) so a client that pipelined more bytes gets a FIN, not a RST.
    this.client.on('data', () => {});
    this.client.on('end', () => this.client.destroy());
    this.client.resume();
    this.client.end(bytes);
    this.lingerTimer = setTimeout(() => this.client.destroy(), Math.min(1000, this.ctx.config.headerTimeoutMs));
  }

  // ── decision and dial ───────────────────────────────────────────────────────

  private async admit(req: ConnectRequest): Promise<void> {
    const identity = this.credentialIdentity ?? this.ctx.engine.identifyByAddress(this.client.remoteAddress ?? '');
    const started = performance.now();
    this.admitting = true;
    let admission: Admission;
    try {
      admission = await this.ctx.gate.admit(identity, req.host, req.port, DOOR);
    } catch (e) {
      this.admitting = false;
      this.ctx.log.error({ event: 'socks_admit_failed', err: (e as Error).message }, 'SOCKS5 admission failed');
      if (this.clientClosed) return this.maybeFinish();
      return this.closeWith(replyMessage(Reply.generalFailure));
    }
    this.admitting = false;
    const decision = admission.decision;
    // An allowed decision that never becomes a tunnel still gets its one log line.
    const logAllowed = (error: string) => this.ctx.gate.logConnection(identity, DOOR, decision, req.port, 0, 0, performance.now() - started, error);
    if (this.clientClosed) {
      if (decision.allow) logAllowed('client_closed');
      return this.maybeFinish();
    }
    if (!admission.ok) {
      if (admission.error === 'resolve_failed') {
        logAllowed(`resolve_${admission.detail}`);
        return this.closeWith(replyMessage(Reply.hostUnreachable));
      }
      return this.closeWith(replyMessage(Reply.notAllowed));
    }
    const tunnel = Tunnel.open(this.ctx, this.client, { door: DOOR, identity, decision, host: req.host, port: req.port });
    if (tunnel === null) {
      logAllowed('connection_limit');
      return this.closeWith(replyMessage(Reply.generalFailure));
    }
    this.tunnel = tunnel;
    this.state = 'connecting';
    const err = await tunnel.connect(admission.address);
    if (err) {
      tunnel.close(`connect_${err.code}`, replyMessage(connectErrorReply(err.code)));
      return;
    }
    const up = tunnel.upstream;
    if (tunnel.closed || up === null) return;
    this.state = 'open';
    this.client.write(replyMessage(Reply.succeeded, { address: up.localAddress ?? '0.0.0.0', port: up.localPort ?? 0 }));
    const rest = this.parser.takeRest();
    spliceWithSniCheck(tunnel, rest.length > 0 ? rest : null);
  }

  // ── teardown ────────────────────────────────────────────────────────────────

  private onClientClose(): void {
    this.clientClosed = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.handshakeTimer = this.lingerTimer = null;
    this.maybeFinish();
  }

  /** The session is over once its client socket closed and no admission is pending (a Tunnel logs itself). */
  private maybeFinish(): void {
    if (this.finished || !this.clientClosed || this.admitting) return;
    this.finished = true;
    this.state = 'closed';
    this.onGone(this);
  }
}

export async function startSocksDoor(ctx: SocksContext, at: HostPort): Promise<RunningDoor> {
  const sessions = new Set<SocksSession>();
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => {
    if (!ctx.sourceLimit.admit(sock, 'socks5')) return;
    liveClients++;
    const s = new SocksSession(ctx, sock, (gone) => {
      if (sessions.delete(gone)) liveClients--;
    });
    sessions.add(s);
    s.start();
  });
  const address = await listenDoor(server, at, '--socks', (e) => ctx.log.error({ event: 'listener_error', door: DOOR, err: e.message }, 'SOCKS5 listener error'));
  return {
    name: 'socks5',
    address,
    close: (graceMs: number) => {
      for (const s of sessions) if (s.handshaking) s.destroy('shutdown');
      return closeServer(server, sessions, graceMs);
    },
  };
}
