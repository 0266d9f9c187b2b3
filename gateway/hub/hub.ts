import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../../common/logger.js';
import { CloseCode } from '../../common/protocol/close-codes.js';
import { DEVICE_PATH, MAX_CLIENT_FRAME_BYTES, SUBPROTOCOL } from '../../common/protocol/frames.js';
import { encodeDrain, encodePushFrame } from '../../common/protocol/server-frames.js';
import {
  fullBucket,
  takeToken,
  type TokenRate,
  type TokenState,
} from '../../common/ratelimit/token-bucket.js';
import { deadAfterMs, onMissed, type HeartbeatPolicy } from '../heartbeat.js';
import type { GatewayMetrics } from '../metrics.js';
import { DeliveryOrderer, type DeliveryPath, type DeliverySink } from './orderer.js';
import {
  DeviceSocket,
  SessionProtocol,
  State,
  closeWith,
  monotonicMs,
  onSocketClose,
  onSocketError,
  onSocketMessage,
  type DeliveryWatch,
  type SessionHost,
} from './session.js';
import { PushFrameEncoder } from './push-frame.js';
import { StatusCounts } from './status-counts.js';
import { campaignOfMessageId } from '../../common/campaign/plan.js';
import type { DeviceStore } from './store.js';

const ignoreError = () => {};

const SWEEP_INTERVAL_MS = 1000;
/**
 * How often message status counters are written. Often, so each write is small: written with
 * the 1 s sweep, 200 pushes a second came to 600 commands in one go, a 3-4 ms block of the event
 * loop (and a scavenge) once a second, which every push arriving then waited out: the latency
 * tail recurring once a second at a fixed phase.
 */
const STATUS_FLUSH_MS = 100;
/** A sweep this much later than planned means this process stalled (GC, CPU starvation, a frozen VM). */
const STALL_MS = 1000;

export interface HubOptions {
  /** Pushes written and acked, for the per-app adaptive throttling (see SessionOptions). */
  deliveryWatch?: DeliveryWatch;
  gatewayId: string;
  maxConnections: number;
  acceptRate: number;
  helloTimeoutMs: number;
  maxPendingHandshakes: number;
  maxPendingHandshakesPerAddress: number;
  sendBufferBytes: number;
  frameRate: number;
  tagUpdatesPerMinute: number;
  heartbeat: HeartbeatPolicy;
  secretOf(app: string): string | undefined;
  /** Endpoints (best first) to advise devices during drain. */
  drainHint(): Promise<string[]>;
  /**
   * Frames written (delivered) and acks of a campaign's message, aggregated per campaign over a
   * second (the campaign is read from the message id: common/campaign/plan.ts).
   */
  countCampaign?(campaign: string, counter: 'delivered' | 'acked', n: number): Promise<unknown>;
}

/**
 * The registry of this gateway's device connections, in Centrifuge's hub shape: admission (the
 * upgrade gate: drain, connection limit, accept rate), the sessions by device, one sweep a
 * second over every deadline (hello, heartbeat, token expiry, send buffers), routing pushes
 * and kicks to the session they are for, and drain. The per-connection protocol is in
 * session.ts, ordering in orderer.ts, ack batching in ack-batcher.ts; inboxes and presence are
 * behind the DeviceStore.
 */
export class DeviceHub implements SessionHost {
  /**
   * The sessions by app, then device: a routed push finds its session without making an
   * `app NUL device` key (a string built and hashed per delivery of a fan-out), and a
   * connection costs one map entry and no key string (live heap per connection, issue 15).
   */
  private readonly byApp = new Map<string, Map<string, DeviceSocket>>();
  private sessionCount = 0;
  private readonly awaitingHello = new Set<DeviceSocket>();
  /** Connections without hello per source address. */
  private readonly pendingByPeer = new Map<string, number>();
  private readonly blocked = new Set<DeviceSocket>();
  private readonly wss: WebSocketServer;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly statusTimer: NodeJS.Timeout;
  private readonly acceptRate: TokenRate;
  private readonly acceptBucket: TokenState;
  private readonly status = new StatusCounts();
  private readonly orderer: DeliveryOrderer<DeviceSocket>;
  private readonly proto: SessionProtocol;
  private draining = false;
  private drainHintCache: string[] = [];
  private onEmpty: (() => void) | undefined;
  /** Sockets corked by a push write in this tick; uncorked together once the tick's work is done. */
  private readonly corked: Duplex[] = [];
  private readonly uncorkAll = () => {
    for (const raw of this.corked) raw.uncork();
    this.corked.length = 0;
  };
  /** Called when another gateway must close an older session of a device (presence moved). */
  kickRemote: (gateway: string, app: string, device: string, sess: string) => void = () => {};

  constructor(
    private readonly store: DeviceStore,
    private readonly metrics: GatewayMetrics,
    private readonly opts: HubOptions,
    private readonly log: Logger,
  ) {
    this.acceptRate = { perSecond: opts.acceptRate, burst: opts.acceptRate };
    this.acceptBucket = fullBucket(this.acceptRate, monotonicMs());
    this.orderer = new DeliveryOrderer(this.deliverySink());
    this.proto = new SessionProtocol(this, store, this.orderer, this.status, metrics, opts, log);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_CLIENT_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      WebSocket: DeviceSocket,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.statusTimer = setInterval(() => this.flushStatusCounts(), STATUS_FLUSH_MS);
    this.statusTimer.unref();
    metrics.setConnectionSource(() => this.sessionCount);
  }

  get connectionCount(): number {
    return this.sessionCount;
  }

  /** Every session (a device's current connection), app by app. */
  private *sessions(): Generator<DeviceSocket> {
    for (const devices of this.byApp.values()) yield* devices.values();
  }

  // ------------------------------------------------------------------ admission

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignoreError);
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== DEVICE_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    // Connections that have not said hello have a budget of their own (in total and per source
    // address), apart from --max-connections, which counts authenticated devices only: idle
    // unauthenticated upgrades can fill their own budget, never the devices'.
    const peer = req.socket.remoteAddress ?? '';
    let refuse: [number, string, string] | undefined;
    if (this.draining) refuse = [CloseCode.serviceRestart, 'draining', 'draining'];
    else if (this.sessionCount >= this.opts.maxConnections)
      refuse = [CloseCode.tryAgainLater, 'connection limit reached', 'overload'];
    else if ((this.pendingByPeer.get(peer) ?? 0) >= this.opts.maxPendingHandshakesPerAddress)
      refuse = [
        CloseCode.tryAgainLater,
        'too many connections without hello from this address',
        'pending_per_address',
      ];
    else if (!takeToken(this.acceptBucket, this.acceptRate, monotonicMs()))
      refuse = [CloseCode.tryAgainLater, 'accept rate exceeded', 'rate_limited'];
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const s = ws as DeviceSocket;
      // ws now handles the socket's errors itself; a second listener would turn the socket's
      // one 'error' listener into an array, on every connection.
      socket.removeListener('error', ignoreError);
      s.on('error', onSocketError);
      if (refuse) {
        this.metrics.connects.inc({ result: refuse[2] });
        if (refuse[0] === CloseCode.serviceRestart) s.send(this.drainFrameText());
        s.close(refuse[0], refuse[1]);
        return;
      }
      const now = monotonicMs();
      s.raw = socket;
      this.proto.opened(s, url.searchParams.get('app') ?? undefined, now + this.opts.helloTimeoutMs, now);
      // The budget of connections without hello is full: the one waiting longest goes (a real
      // device says hello within a round trip; a socket that sits idle is the likely abuser), so
      // idle upgrades can delay a newcomer by nothing and never lock it out.
      if (this.awaitingHello.size >= this.opts.maxPendingHandshakes) {
        const oldest = this.awaitingHello.values().next().value!;
        this.metrics.connects.inc({ result: 'pending_evicted' });
        this.leavePending(oldest);
        closeWith(oldest, CloseCode.tryAgainLater, 'too many connections without hello; oldest dropped');
      }
      s.peer = peer;
      this.awaitingHello.add(s);
      this.pendingByPeer.set(peer, (this.pendingByPeer.get(peer) ?? 0) + 1);
      s.on('message', onSocketMessage);
      s.on('close', onSocketClose);
    });
  }

  /** No longer a connection without hello (authenticated, or closed). */
  private leavePending(ws: DeviceSocket): void {
    if (!this.awaitingHello.delete(ws)) return;
    const n = (this.pendingByPeer.get(ws.peer) ?? 1) - 1;
    if (n > 0) this.pendingByPeer.set(ws.peer, n);
    else this.pendingByPeer.delete(ws.peer);
    ws.peer = '';
  }

  attach(ws: DeviceSocket): boolean {
    this.leavePending(ws);
    let devices = this.byApp.get(ws.app);
    const older = devices?.get(ws.device);
    // Devices that authenticated while the gateway filled up: the limit holds for sessions.
    if (!older && this.sessionCount >= this.opts.maxConnections) return false;
    if (!devices) this.byApp.set(ws.app, (devices = new Map()));
    devices.set(ws.device, ws);
    if (!older) this.sessionCount++;
    if (older && older !== ws) closeWith(older, CloseCode.sessionReplaced, 'session replaced');
    return true;
  }

  onClose(ws: DeviceSocket, code: number): void {
    this.leavePending(ws);
    this.blocked.delete(ws);
    const devices = ws.app !== '' ? this.byApp.get(ws.app) : undefined;
    if (devices && devices.get(ws.device) === ws) {
      this.sessionCount--;
      devices.delete(ws.device);
      if (devices.size === 0) this.byApp.delete(ws.app);
    }
    if (ws.sess) this.proto.released(ws, code);
    ws.state = State.Closing;
    if (this.onEmpty && this.sessionCount === 0) this.onEmpty();
  }

  // ------------------------------------------------------------------ delivery

  /** A routed push for a device (from this gateway's push API or another's, via Redis). */
  deliver(app: string, device: string, seq: number, body: string, sent: number): void {
    const ws = this.byApp.get(app)?.get(device);
    if (!ws || ws.state === State.Closing) return; // not here (any more): the inbox keeps it
    // Before Ready only a hello in progress takes pushes (held until its first inbox page).
    if (ws.pending === null && ws.state !== State.Ready) return;
    this.orderer.routed(ws, seq, body, sent);
  }

  /** Close an older session of a device that connected again elsewhere. */
  kick(app: string, device: string, sess: string): void {
    const ws = this.byApp.get(app)?.get(device);
    if (ws && ws.sess === sess) closeWith(ws, CloseCode.sessionReplaced, 'session replaced');
  }

  /** Redis pub/sub reconnected: routed pushes may have been missed; every session rereads its inbox. */
  resyncAll(): void {
    for (const ws of this.sessions()) if (ws.state === State.Ready) this.resync(ws);
  }

  /** Another gateway's notification for this device was lost: reread its inbox. */
  resyncDevice(app: string, device: string): void {
    const ws = this.byApp.get(app)?.get(device);
    if (ws && ws.state === State.Ready) this.resync(ws);
  }

  /**
   * Redis lost or rewound state: every session writes its presence, tags and alias back and
   * replays its inbox from the start (64 at a time). Resolves with how many sessions there
   * were and how many failed (the caller tries again while Redis is still unwell).
   */
  async reassertAll(): Promise<{ sessions: number; failed: number }> {
    const sessions = [...this.sessions()].filter((ws) => ws.state === State.Ready);
    let next = 0;
    let failed = 0;
    const worker = async () => {
      while (next < sessions.length) {
        const ws = sessions[next++]!;
        await this.proto.reassert(ws).catch((err: unknown) => {
          failed++;
          this.log.debug({ err, device: ws.device }, 'reassert failed');
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(64, sessions.length) }, worker));
    return { sessions: sessions.length, failed };
  }

  private resync(ws: DeviceSocket): void {
    this.orderer
      .resync(ws)
      .catch((err: unknown) => this.log.warn({ err, device: ws.device }, 'resync failed'));
  }

  private deliverySink(): DeliverySink<DeviceSocket> {
    // Label children of the per-message counters, bound once (label lookup per message is not free).
    const live = this.metrics.deliveries.labels('live');
    const replay = this.metrics.deliveries.labels('replay');
    const frames = new PushFrameEncoder();
    return {
      write: (ws: DeviceSocket, seq: number, body: string, path: DeliveryPath, sent?: number) => {
        // A socket that is no longer open takes nothing (as ws.send would): not a frame written,
        // so not counted sent, and not a seq a receipt on this connection may name.
        if (ws.readyState !== WebSocket.OPEN) return false;
        if (ws.bufferedAmount > this.opts.sendBufferBytes) {
          if (!ws.blocked) {
            ws.blocked = true;
            this.blocked.add(ws);
            this.metrics.backpressure.inc();
          }
          return false;
        }
        // Pushes written in one tick (several messages stored together for this device, a
        // replay page) leave in one TCP write: cork now, uncork after the tick.
        const raw = ws.raw;
        if (raw) {
          if (raw.writableCorked === 0) {
            raw.cork();
            if (this.corked.push(raw) === 1) process.nextTick(this.uncorkAll);
          }
          // The whole frame, its shared part encoded once per message (push-frame.ts).
          raw.write(frames.frame(seq, body));
        } else ws.send(encodePushFrame(seq, body));
        (path === 'live' ? live : replay).inc();
        if (sent !== undefined) this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - sent) / 1000);
        const id = frames.id(body);
        this.sentCount(id);
        this.opts.deliveryWatch?.sent(ws.app, ws.device, id);
        return true;
      },
      isOpen: (ws) => ws.readyState === WebSocket.OPEN,
      readInbox: (ws, afterSeq, limit) => this.store.readInbox(ws.app, ws.device, afterSeq, limit),
      expired: (n) => this.metrics.stored.inc({ outcome: 'expired' }, n),
      missing: (ws, n) => {
        this.metrics.stored.inc({ outcome: 'body_missing' }, n);
        this.log.warn(
          { app: ws.app, device: ws.device, dropped: n },
          'inbox entries dropped: their shared message body is gone from Redis (evicted or lost)',
        );
      },
      resyncFailed: (ws, err) => this.log.warn({ err, device: ws.device }, 'resync failed'),
    };
  }

  /** Writes of one message in a row (a fan-out), added to the status counts as one. */
  private sentRunId = '';
  private sentRunN = 0;

  private sentCount(id: string): void {
    if (id === this.sentRunId) {
      this.sentRunN++;
      return;
    }
    if (this.sentRunN) this.status.add(this.sentRunId, 'sent', this.sentRunN);
    this.sentRunId = id;
    this.sentRunN = 1;
  }

  /** Message status counters are batched and written every STATUS_FLUSH_MS. */
  private flushStatusCounts(): void {
    if (this.sentRunN) this.status.add(this.sentRunId, 'sent', this.sentRunN);
    this.sentRunId = '';
    this.sentRunN = 0;
    this.status.flush((id, counter, n) => {
      this.store
        .countStatus(id, counter, n)
        .catch((err: unknown) => this.log.debug({ err }, 'status count failed'));
      // A campaign counts what its message status counts: devices that read it (once each) and
      // acks. Frames written are not deliveries (a dying connection loses what it was sent).
      const campaign = this.opts.countCampaign && campaignOfMessageId(id);
      if (campaign && (counter === 'delivered' || counter === 'acked'))
        this.opts.countCampaign!(campaign, counter, n).catch((err: unknown) =>
          this.log.debug({ err }, 'campaign count failed'),
        );
    });
  }

  // ------------------------------------------------------------------ sweep, drain

  private lastSweepAt = monotonicMs();

  /**
   * After a stall of the event loop (a long GC, CPU starvation, a frozen VM) the first timer to
   * run is this sweep, before the frames that arrived meanwhile have been read: judged now,
   * every device would look silent. Read first, judge later: the stalled time is not counted
   * against any device (hello and heartbeat deadlines move by the gap), and the next sweep
   * judges on what the devices really sent.
   */
  private forgiveStall(now: number): boolean {
    const gap = now - this.lastSweepAt - SWEEP_INTERVAL_MS;
    this.lastSweepAt = now;
    if (gap <= STALL_MS) return false;
    for (const ws of this.awaitingHello) ws.helloBy += gap;
    for (const ws of this.sessions()) ws.lastBeat += gap;
    this.metrics.stalls.inc();
    this.log.warn(
      { gapMs: gap, sessions: this.sessionCount },
      'event loop stalled; deadlines moved by the gap',
    );
    return true;
  }

  private sweep(): void {
    const now = monotonicMs();
    if (this.forgiveStall(now)) return;
    // Token expiry is wall-clock time (the JWT's exp, seconds); everything else is monotonic.
    const wallSeconds = Date.now() / 1000;
    for (const ws of this.awaitingHello) {
      if (now > ws.helloBy) {
        this.metrics.connects.inc({ result: 'hello_timeout' });
        closeWith(ws, CloseCode.helloTimeout, 'no hello in time');
      }
    }
    const policy = this.opts.heartbeat;
    // One state object for the whole sweep, not one per session a second.
    const beat = { intervalMs: 0, streak: 0 };
    // Plain loops over the maps (no generator: no result object per session a second).
    for (const devices of this.byApp.values())
      for (const ws of devices.values()) {
        if (ws.state !== State.Ready) continue;
        beat.intervalMs = ws.hbMs;
        if (now - ws.lastBeat > deadAfterMs(policy, beat)) {
          ws.hbMs = onMissed(policy, { intervalMs: ws.hbMs, streak: ws.hbStreak }).intervalMs;
          closeWith(ws, CloseCode.heartbeatTimeout, 'heartbeat timeout');
        } else if (wallSeconds > ws.expiresAt) {
          closeWith(ws, CloseCode.tokenExpired, 'token expired');
        }
      }
    for (const ws of this.blocked) {
      if (ws.readyState !== WebSocket.OPEN) this.blocked.delete(ws);
      else if (ws.bufferedAmount <= this.opts.sendBufferBytes / 2) {
        ws.blocked = false;
        this.blocked.delete(ws);
        this.resync(ws);
      }
    }
  }

  private drainFrameText(): string {
    return encodeDrain({ reconnect: this.drainHintCache, within: 1000 });
  }

  /** Refuse new connections from now on (with 1012 and a hint). */
  async startDrain(): Promise<void> {
    this.draining = true;
    this.drainHintCache = await this.opts.drainHint().catch(() => []);
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Close up to `n` sessions with 1012 and the reconnect hint. Returns how many it closed. */
  closeSome(n: number): number {
    let closed = 0;
    const frame = this.drainFrameText();
    for (const ws of [...this.awaitingHello]) closeWith(ws, CloseCode.serviceRestart, 'draining');
    for (const ws of [...this.sessions()]) {
      if (closed >= n) break;
      if (ws.state === State.Closing) continue;
      if (ws.readyState === WebSocket.OPEN) ws.send(frame);
      closeWith(ws, CloseCode.serviceRestart, 'service restart');
      closed++;
    }
    return closed;
  }

  /** Resolves when no session is left (or after `timeoutMs`). */
  whenEmpty(timeoutMs: number): Promise<void> {
    if (this.sessionCount === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.onEmpty = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Stop everything at once (tests, after drain). */
  terminateAll(): void {
    for (const ws of this.awaitingHello) ws.terminate();
    for (const ws of [...this.sessions()]) ws.terminate();
  }

  close(): void {
    clearInterval(this.sweepTimer);
    clearInterval(this.statusTimer);
    this.flushStatusCounts();
    this.wss.close();
  }
}
