import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Logger } from '../common/logger.js';
import { CloseCode } from '../common/protocol/close-codes.js';
import {
  DEVICE_PATH,
  MAX_CLIENT_FRAME_BYTES,
  PROTOCOL_VERSION,
  SUBPROTOCOL,
  parseClientFrame,
  type HelloFrame,
  type UpdateFrame,
} from '../common/protocol/frames.js';
import { verifyDeviceTokenSync } from '../common/protocol/token.js';
import { forgetDevice, indexDevice, touchDevice } from '../common/redis/app-index.js';
import type { PgRedis } from '../common/redis/connection.js';
import type { RedisKeys } from '../common/redis/keys.js';
import { countMessage, type MessageCounter } from '../common/redis/messages.js';
import {
  ackMessagesForDevices,
  claimPresence,
  pushFrameText,
  readInbox,
  releasePresence,
  type ReplayPage,
} from '../common/redis/offline-store.js';
import { deadAfterMs, initialHeartbeat, onBeat, onMissed, type HeartbeatPolicy } from './heartbeat.js';
import type { GatewayMetrics } from './metrics.js';

const enum State {
  AwaitHello = 0,
  Authenticating = 1,
  Ready = 2,
  Closing = 3,
}

/**
 * One device connection. Session state lives on the socket object itself (one object per
 * connection, no per-connection closures or timers): the hub's shared listeners reach it
 * through `this`, and one sweep per second checks every deadline.
 */
export class DeviceSocket extends WebSocket {
  hub!: DeviceHub;
  state: State = State.AwaitHello;
  app = '';
  device = '';
  /** `app NUL device`: the key of the sessions map. */
  key = '';
  sess = '';
  /** App named in the connect URL (?app=), checked against the token. */
  appHint: string | undefined = undefined;
  /** Hello deadline before Ready; token expiry (ms) after. */
  deadline = 0;
  hbMs = 0;
  hbStreak = 0;
  lastBeat = 0;
  /** Highest seq written to this connection. */
  lastSeq = 0;
  tags: string[] = [];
  alias: string | null = null;
  frameTokens = 0;
  frameAt = 0;
  /** Non-null while the inbox is being replayed: routed pushes wait here. */
  pending: [number, string, number][] | null = null;
  resyncAgain = false;
  /** Send buffer over the limit: pushes stay in the store until it drains. */
  blocked = false;
  /** The TCP socket under the WebSocket: corked while a batch of pushes is written to it. */
  raw: Duplex | null = null;
}

// Shared listeners (one function for all sockets, `this` is the socket): no closure per connection.
const onSocketMessage = function (this: DeviceSocket, data: RawData, isBinary: boolean) {
  this.hub.onFrame(this, data, isBinary);
} as (...args: unknown[]) => void;
const onSocketClose = function (this: DeviceSocket, code: number) {
  this.hub.onClose(this, code);
} as (...args: unknown[]) => void;
// 'close' follows every 'error'; the hub cleans up there.
const onSocketError = () => {};
const ignoreError = () => {};

export interface HubOptions {
  gatewayId: string;
  maxConnections: number;
  acceptRate: number;
  helloTimeoutMs: number;
  sendBufferBytes: number;
  frameRate: number;
  maxInbox: number;
  keyTtlMs: number;
  heartbeat: HeartbeatPolicy;
  secretOf(app: string): string | undefined;
  /** Endpoints (best first) to advise devices during drain. */
  drainHint(): Promise<string[]>;
}

/**
 * Holds every device connection of this gateway: the upgrade gate (drain, connection limit,
 * accept rate), hello/auth, heartbeats, acks, tag updates, and writing pushes in sequence from
 * the two paths (replay from the inbox, routed live).
 */
export class DeviceHub {
  readonly sessions = new Map<string, DeviceSocket>();
  private readonly awaitingHello = new Set<DeviceSocket>();
  private readonly blocked = new Set<DeviceSocket>();
  private readonly wss: WebSocketServer;
  private readonly sweepTimer: NodeJS.Timeout;
  private acceptTokens: number;
  private acceptAt = Date.now();
  private sessionCounter = 0;
  private readonly bootId = Date.now().toString(36);
  private readonly statusCounts = new Map<string, [MessageCounter, number][]>();
  private draining = false;
  private drainHintCache: string[] = [];
  private onEmpty: (() => void) | undefined;
  /** Sockets corked by write() in this tick; uncorked together once the tick's work is done. */
  private readonly corked: Duplex[] = [];
  private readonly uncorkAll = () => {
    for (const raw of this.corked) raw.uncork();
    this.corked.length = 0;
  };
  private readonly ackQueue = new Map<string, { ws: DeviceSocket; ids: string[] }[]>();
  private ackFlushScheduled = false;
  // Label children of the per-message counters, bound once (label lookup per message is not free).
  private readonly liveDeliveries;
  private readonly replayDeliveries;
  private readonly acksRemoved;
  /** Called when another gateway must close an older session of a device (presence moved). */
  kickRemote: (gateway: string, app: string, device: string, sess: string) => void = () => {};

  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    private readonly metrics: GatewayMetrics,
    private readonly opts: HubOptions,
    private readonly log: Logger,
  ) {
    this.acceptTokens = opts.acceptRate;
    this.liveDeliveries = metrics.deliveries.labels('live');
    this.replayDeliveries = metrics.deliveries.labels('replay');
    this.acksRemoved = metrics.acks.labels('removed');
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_CLIENT_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      WebSocket: DeviceSocket,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
    metrics.setConnectionSource(() => this.sessions.size);
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  // ------------------------------------------------------------------ upgrade gate

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignoreError);
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== DEVICE_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    let refuse: [number, string, string] | undefined;
    if (this.draining) refuse = [CloseCode.serviceRestart, 'draining', 'draining'];
    else if (this.sessions.size + this.awaitingHello.size >= this.opts.maxConnections)
      refuse = [CloseCode.tryAgainLater, 'connection limit reached', 'overload'];
    else if (!this.takeAcceptToken())
      refuse = [CloseCode.tryAgainLater, 'accept rate exceeded', 'rate_limited'];
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const s = ws as DeviceSocket;
      s.on('error', onSocketError);
      if (refuse) {
        this.metrics.connects.inc({ result: refuse[2] });
        if (refuse[0] === CloseCode.serviceRestart) s.send(this.drainFrameText());
        s.close(refuse[0], refuse[1]);
        return;
      }
      s.hub = this;
      s.raw = socket;
      s.appHint = url.searchParams.get('app') ?? undefined;
      s.deadline = Date.now() + this.opts.helloTimeoutMs;
      s.frameTokens = this.opts.frameRate * 2;
      s.frameAt = Date.now();
      this.awaitingHello.add(s);
      s.on('message', onSocketMessage);
      s.on('close', onSocketClose);
    });
  }

  private takeAcceptToken(): boolean {
    const now = Date.now();
    this.acceptTokens = Math.min(
      this.opts.acceptRate,
      this.acceptTokens + ((now - this.acceptAt) * this.opts.acceptRate) / 1000,
    );
    this.acceptAt = now;
    if (this.acceptTokens < 1) return false;
    this.acceptTokens -= 1;
    return true;
  }

  // ------------------------------------------------------------------ frames

  onFrame(ws: DeviceSocket, data: RawData, isBinary: boolean): void {
    if (ws.state === State.Closing) return;
    const now = Date.now();
    const burst = this.opts.frameRate * 2;
    ws.frameTokens = Math.min(burst, ws.frameTokens + ((now - ws.frameAt) * this.opts.frameRate) / 1000);
    ws.frameAt = now;
    if (ws.frameTokens < 1) return this.reject(ws, CloseCode.policyViolation, 'frame flood', 'flood');
    ws.frameTokens -= 1;
    if (isBinary)
      return this.reject(ws, CloseCode.unsupportedData, 'binary frames are not supported', 'binary');
    const parsed = parseClientFrame(data.toString());
    if (!parsed.ok) return this.reject(ws, CloseCode.policyViolation, parsed.reason, 'invalid');
    const frame = parsed.frame;
    if (frame.t === 'hello') {
      if (ws.state !== State.AwaitHello)
        return this.reject(ws, CloseCode.policyViolation, 'hello: already sent', 'hello_twice');
      ws.state = State.Authenticating;
      this.hello(ws, frame).catch((err: unknown) => this.internalError(ws, err, 'hello'));
      return;
    }
    if (ws.state !== State.Ready)
      return this.reject(ws, CloseCode.policyViolation, `${frame.t}: before welcome`, 'before_welcome');
    switch (frame.t) {
      case 'ping':
        return this.ping(ws, now);
      case 'ack':
        return this.queueAck(ws, frame.ids);
      case 'update':
        this.update(ws, frame).catch((err: unknown) => this.internalError(ws, err, 'update'));
        return;
      case 'bye':
        this.bye(ws).catch((err: unknown) => this.internalError(ws, err, 'bye'));
        return;
    }
  }

  private reject(ws: DeviceSocket, code: number, reason: string, metric: string) {
    this.metrics.framesRejected.inc({ reason: metric });
    this.closeWith(ws, code, reason);
  }

  private closeWith(ws: DeviceSocket, code: number, reason: string) {
    if (ws.state === State.Closing) return;
    ws.state = State.Closing;
    ws.close(code, reason.slice(0, 120));
  }

  private internalError(ws: DeviceSocket, err: unknown, what: string) {
    this.log.warn({ err, device: ws.device }, `${what} failed`);
    this.closeWith(ws, CloseCode.tryAgainLater, 'temporary failure, retry');
  }

  private async hello(ws: DeviceSocket, frame: HelloFrame) {
    const check = verifyDeviceTokenSync(frame.token, this.opts.secretOf, ws.appHint);
    if (!check.ok) {
      const expired = check.reason === 'expired';
      this.metrics.connects.inc({ result: expired ? 'token_expired' : 'auth_failed' });
      this.closeWith(ws, expired ? CloseCode.tokenExpired : CloseCode.authFailed, `auth: ${check.reason}`);
      return;
    }
    const { app, device } = check.claims;
    ws.app = app;
    ws.device = device;
    ws.key = `${app}\u0000${device}`;
    ws.sess = `${this.bootId}.${(++this.sessionCounter).toString(36)}`;
    ws.deadline = check.claims.exp * 1000;
    this.awaitingHello.delete(ws);
    const older = this.sessions.get(ws.key);
    this.sessions.set(ws.key, ws);
    if (older && older !== ws) this.closeWith(older, CloseCode.sessionReplaced, 'session replaced');

    // From the claim on, routed pushes for this device wait in `pending` until the first
    // inbox page (read atomically with the claim) has been written.
    ws.pending = [];
    const announcedTags = frame.tags ? [...new Set(frame.tags)].sort() : undefined;
    const claim = await claimPresence(
      this.redis,
      this.keys,
      app,
      device,
      { gateway: this.opts.gatewayId, session: ws.sess },
      this.opts.keyTtlMs,
      { tags: announcedTags, alias: frame.alias },
    );
    if (claim.previous && claim.previous.gateway !== this.opts.gatewayId) {
      this.kickRemote(claim.previous.gateway, app, device, claim.previous.session);
    }
    const tags = announcedTags ?? claim.tags ?? [];
    const alias = frame.alias !== undefined ? frame.alias : (claim.alias ?? null);
    // A device reconnecting with the tags and alias it already had (the common case in a
    // reconnect storm) is already in the indexes: skip the round trip.
    const known =
      claim.tags !== undefined &&
      claim.tags.length === tags.length &&
      claim.tags.every((t, i) => t === tags[i]) &&
      (claim.alias ?? null) === alias;
    if (!known) {
      await indexDevice(
        this.redis,
        this.keys,
        app,
        device,
        { tags, alias },
        { tags: claim.tags, alias: claim.alias },
        Date.now(),
        false,
      );
    }
    if (ws.readyState !== WebSocket.OPEN || (ws.state as State) === State.Closing) return;
    const hb = initialHeartbeat(this.opts.heartbeat, claim.learnedHeartbeatMs);
    ws.hbMs = hb.intervalMs;
    ws.lastBeat = Date.now();
    ws.tags = tags;
    ws.alias = alias;
    ws.state = State.Ready;
    this.metrics.connects.inc({ result: 'accepted' });
    ws.send(
      JSON.stringify({
        t: 'welcome',
        v: PROTOCOL_VERSION,
        gateway: this.opts.gatewayId,
        session: ws.sess,
        hb: ws.hbMs,
        tags,
        alias,
        now: Date.now(),
      }),
    );
    await this.resync(ws, claim.lastSeq, claim.firstPage);
  }

  private ping(ws: DeviceSocket, now: number) {
    const next = onBeat(this.opts.heartbeat, { intervalMs: ws.hbMs, streak: ws.hbStreak }, now - ws.lastBeat);
    ws.hbMs = next.intervalMs;
    ws.hbStreak = next.streak;
    ws.lastBeat = now;
    ws.send(`{"t":"pong","hb":${ws.hbMs}}`);
  }

  /**
   * Acks are applied in batches: every ack that arrives in one turn of the event loop goes to
   * Redis in one script call per app and hashtag bucket (a fan-out's acks arrive together).
   */
  private queueAck(ws: DeviceSocket, ids: string[]) {
    let list = this.ackQueue.get(ws.app);
    if (!list) this.ackQueue.set(ws.app, (list = []));
    list.push({ ws, ids });
    if (this.ackFlushScheduled) return;
    this.ackFlushScheduled = true;
    setImmediate(() => {
      this.ackFlushScheduled = false;
      const batch = [...this.ackQueue];
      this.ackQueue.clear();
      for (const [app, entries] of batch) {
        this.applyAcks(app, entries).catch((err: unknown) => this.log.warn({ err, app }, 'acks failed'));
      }
    });
  }

  private async applyAcks(app: string, entries: { ws: DeviceSocket; ids: string[] }[]) {
    const results = await ackMessagesForDevices(
      this.redis,
      this.keys,
      app,
      entries.map((e) => ({ device: e.ws.device, ids: e.ids })),
    );
    results.forEach(({ removed, unknown }, i) => {
      const ws = entries[i]!.ws;
      if (removed.length) this.acksRemoved.inc(removed.length);
      for (const id of removed) this.countStatus(id, 'acked');
      if (unknown.length) {
        this.metrics.acks.inc({ result: 'unknown' }, unknown.length);
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(
            JSON.stringify({
              t: 'error',
              code: 'unknown_id',
              message: 'no such unacked message',
              ids: unknown,
            }),
          );
        }
      }
    });
  }

  private async update(ws: DeviceSocket, frame: UpdateFrame) {
    const before = { tags: ws.tags, alias: ws.alias };
    let tags: string[];
    if (frame.set) tags = [...new Set(frame.set)];
    else {
      const s = new Set(ws.tags);
      for (const t of frame.remove ?? []) s.delete(t);
      for (const t of frame.add ?? []) s.add(t);
      tags = [...s];
    }
    tags.sort();
    if (tags.length > 64)
      return this.reject(ws, CloseCode.policyViolation, 'update: more than 64 tags', 'invalid');
    const alias = frame.alias !== undefined ? frame.alias : ws.alias;
    ws.tags = tags;
    ws.alias = alias;
    await indexDevice(this.redis, this.keys, ws.app, ws.device, { tags, alias }, before);
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ t: 'updated', tags, alias }));
  }

  private async bye(ws: DeviceSocket) {
    await forgetDevice(this.redis, this.keys, ws.app, ws.device, { tags: ws.tags, alias: ws.alias });
    ws.tags = [];
    this.closeWith(ws, CloseCode.normal, 'bye');
  }

  onClose(ws: DeviceSocket, code: number) {
    this.awaitingHello.delete(ws);
    this.blocked.delete(ws);
    const wasSession = ws.app !== '' && this.sessions.get(ws.key) === ws;
    if (wasSession) this.sessions.delete(ws.key);
    if (ws.sess) {
      this.metrics.disconnects.inc({ code: String(code) });
      const learned = code === CloseCode.heartbeatTimeout ? ws.hbMs : ws.hbMs || undefined;
      const { app, device, sess, tags } = ws;
      releasePresence(this.redis, this.keys, app, device, sess, learned)
        .then(() => touchDevice(this.redis, this.keys, app, device, tags))
        .catch((err: unknown) => this.log.warn({ err, device }, 'release presence failed'));
    }
    ws.state = State.Closing;
    if (this.onEmpty && this.sessions.size === 0) this.onEmpty();
  }

  // ------------------------------------------------------------------ delivery

  /** A routed push for a device (from this gateway's push API or another's, via Redis). */
  deliver(app: string, device: string, seq: number, body: string, sent: number) {
    const ws = this.sessions.get(`${app}\u0000${device}`);
    if (!ws || ws.state === State.Closing) return; // not here (any more): the inbox keeps it
    if (ws.pending) {
      ws.pending.push([seq, body, sent]);
      return;
    }
    if (ws.state !== State.Ready) return;
    if (ws.blocked || seq <= ws.lastSeq) return;
    if (seq !== ws.lastSeq + 1) {
      // A gap: an earlier message is still on its way (or was routed elsewhere). Read the
      // inbox in order rather than deliver out of order.
      this.resync(ws).catch((err: unknown) => this.log.warn({ err, device }, 'resync failed'));
      return;
    }
    this.write(ws, seq, body, 'live', sent);
  }

  /** Close an older session of a device that connected again elsewhere. */
  kick(app: string, device: string, sess: string) {
    const ws = this.sessions.get(`${app}\u0000${device}`);
    if (ws && ws.sess === sess) this.closeWith(ws, CloseCode.sessionReplaced, 'session replaced');
  }

  private write(
    ws: DeviceSocket,
    seq: number,
    body: string,
    path: 'live' | 'replay',
    sent?: number,
  ): boolean {
    if (ws.bufferedAmount > this.opts.sendBufferBytes) {
      if (!ws.blocked) {
        ws.blocked = true;
        this.blocked.add(ws);
        this.metrics.backpressure.inc();
      }
      return false;
    }
    // Pushes written in one tick (several messages stored together for this device, a replay
    // page) leave in one TCP write: cork now, uncork after the tick.
    const raw = ws.raw;
    if (raw && raw.writableCorked === 0) {
      raw.cork();
      if (this.corked.push(raw) === 1) process.nextTick(this.uncorkAll);
    }
    ws.send(pushFrameText(seq, body));
    ws.lastSeq = seq;
    (path === 'live' ? this.liveDeliveries : this.replayDeliveries).inc();
    if (sent !== undefined) this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - sent) / 1000);
    // Stored bodies start with {"id":"<id>", and ids never need escaping.
    this.countStatus(body.slice(7, body.indexOf('"', 7)), 'sent');
    return true;
  }

  /**
   * Write the device's stored messages after `lastSeq`, in order, then any routed pushes that
   * arrived meanwhile. `floor` is the device's seq at the presence claim: everything at or
   * below it was in the inbox when we read it, or is gone (acked, expired, replaced).
   */
  async resync(ws: DeviceSocket, floor = 0, firstPage?: ReplayPage): Promise<void> {
    if (firstPage) {
      // hello: the caller set `pending` before the claim that read this page.
    } else if (ws.pending) {
      ws.resyncAgain = true;
      return;
    } else ws.pending = [];
    try {
      for (;;) {
        ws.resyncAgain = false;
        for (;;) {
          const page =
            firstPage ?? (await readInbox(this.redis, this.keys, ws.app, ws.device, ws.lastSeq, 100));
          firstPage = undefined;
          if (page.expired) this.metrics.stored.inc({ outcome: 'expired' }, page.expired);
          if (ws.readyState !== WebSocket.OPEN) return;
          for (const m of page.messages) if (!this.write(ws, m.seq, m.body, 'replay')) return;
          if (page.messages.length < 100) break;
        }
        if (floor > ws.lastSeq) ws.lastSeq = floor;
        floor = 0;
        const waiting = (ws.pending ?? []).sort((a, b) => a[0] - b[0]);
        ws.pending = [];
        let gap = false;
        for (const [seq, body, sent] of waiting) {
          if (seq <= ws.lastSeq) continue;
          if (seq !== ws.lastSeq + 1) {
            gap = true;
            break;
          }
          if (!this.write(ws, seq, body, 'live', sent)) return;
        }
        if (!gap && !ws.resyncAgain) return;
      }
    } finally {
      ws.pending = null;
    }
  }

  private countStatus(id: string, counter: MessageCounter) {
    let list = this.statusCounts.get(id);
    if (!list) this.statusCounts.set(id, (list = []));
    const entry = list.find((e) => e[0] === counter);
    if (entry) entry[1]++;
    else list.push([counter, 1]);
  }

  /** Message status counters are batched and written once a second. */
  private flushStatusCounts() {
    if (this.statusCounts.size === 0) return;
    const batch = [...this.statusCounts];
    this.statusCounts.clear();
    for (const [id, counts] of batch) {
      for (const [counter, n] of counts) {
        countMessage(this.redis, this.keys, id, counter, n).catch((err: unknown) =>
          this.log.debug({ err }, 'status count failed'),
        );
      }
    }
  }

  // ------------------------------------------------------------------ sweep, drain

  private sweep() {
    const now = Date.now();
    for (const ws of this.awaitingHello) {
      if (now > ws.deadline) {
        this.metrics.connects.inc({ result: 'hello_timeout' });
        this.closeWith(ws, CloseCode.helloTimeout, 'no hello in time');
      }
    }
    const policy = this.opts.heartbeat;
    for (const ws of this.sessions.values()) {
      if (ws.state !== State.Ready) continue;
      if (now - ws.lastBeat > deadAfterMs(policy, { intervalMs: ws.hbMs, streak: 0 })) {
        ws.hbMs = onMissed(policy, { intervalMs: ws.hbMs, streak: ws.hbStreak }).intervalMs;
        this.closeWith(ws, CloseCode.heartbeatTimeout, 'heartbeat timeout');
      } else if (now > ws.deadline) {
        this.closeWith(ws, CloseCode.tokenExpired, 'token expired');
      }
    }
    for (const ws of this.blocked) {
      if (ws.readyState !== WebSocket.OPEN) this.blocked.delete(ws);
      else if (ws.bufferedAmount <= this.opts.sendBufferBytes / 2) {
        ws.blocked = false;
        this.blocked.delete(ws);
        this.resync(ws).catch((err: unknown) => this.log.warn({ err, device: ws.device }, 'resync failed'));
      }
    }
    this.flushStatusCounts();
  }

  /** Redis pub/sub reconnected: routed pushes may have been missed; every session rereads its inbox. */
  resyncAll() {
    for (const ws of this.sessions.values()) {
      if (ws.state === State.Ready)
        this.resync(ws).catch((err: unknown) => this.log.warn({ err }, 'resync failed'));
    }
  }

  private drainFrameText(): string {
    return JSON.stringify({ t: 'drain', reconnect: this.drainHintCache, within: 1000 });
  }

  /** Refuse new connections from now on (with 1012 and a hint). */
  async startDrain() {
    this.draining = true;
    this.drainHintCache = await this.opts.drainHint().catch(() => []);
  }

  get isDraining() {
    return this.draining;
  }

  /** Close up to `n` sessions with 1012 and the reconnect hint. Returns how many it closed. */
  closeSome(n: number): number {
    let closed = 0;
    const frame = this.drainFrameText();
    for (const ws of [...this.awaitingHello]) this.closeWith(ws, CloseCode.serviceRestart, 'draining');
    for (const ws of this.sessions.values()) {
      if (closed >= n) break;
      if (ws.state === State.Closing) continue;
      if (ws.readyState === WebSocket.OPEN) ws.send(frame);
      this.closeWith(ws, CloseCode.serviceRestart, 'service restart');
      closed++;
    }
    return closed;
  }

  /** Resolves when no session is left (or after `timeoutMs`). */
  whenEmpty(timeoutMs: number): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.onEmpty = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Stop everything at once (tests, after drain). */
  terminateAll() {
    for (const ws of this.awaitingHello) ws.terminate();
    for (const ws of this.sessions.values()) ws.terminate();
  }

  close() {
    clearInterval(this.sweepTimer);
    this.flushStatusCounts();
    this.wss.close();
  }
}
