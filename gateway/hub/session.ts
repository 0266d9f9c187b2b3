import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import type { Logger } from '../../common/logger.js';
import { CloseCode } from '../../common/protocol/close-codes.js';
import {
  MAX_TAGS,
  parseClientFrame,
  type HelloFrame,
  type UpdateFrame,
} from '../../common/protocol/frames.js';
import {
  encodeError,
  encodePong,
  encodeUpdated,
  encodeWelcome,
} from '../../common/protocol/server-frames.js';
import { verifyDeviceTokenSync } from '../../common/protocol/token.js';
import {
  fullBucket,
  takeToken,
  type TokenRate,
  type TokenState,
} from '../../common/ratelimit/token-bucket.js';
import { registrationMark, TagLimitError } from '../../common/redis/app-index.js';
import { initialHeartbeat, onBeat, type HeartbeatPolicy } from '../heartbeat.js';
import type { GatewayMetrics } from '../metrics.js';
import { AckBatcher } from './ack-batcher.js';
import type { DeliveryOrderer, HeldPush, OrderedStream } from './orderer.js';
import type { StatusCounts } from './status-counts.js';
import type { DeviceStore } from './store.js';

/**
 * Session timing's clock: whole milliseconds since the process started, from the monotonic
 * clock. A wall-clock step (NTP, a VM restored) neither times every device out at once nor
 * stops dead ones from being found, and the values stay small integers, which V8 keeps in the
 * session object itself (a Date.now() value is a boxed double: 16 bytes per field per session).
 * Token expiry alone is wall-clock time (a JWT's exp).
 */
export const monotonicMs = (): number => Math.floor(performance.now());

export const enum State {
  AwaitHello = 0,
  Authenticating = 1,
  Ready = 2,
  Closing = 3,
}

/**
 * One device connection. Session state lives on the socket object itself (one object per
 * connection, no per-connection closures or timers): the shared listeners reach the protocol
 * through `this.proto`, and the hub's one sweep per second checks every deadline. It is also
 * the orderer's stream and the frame-rate bucket's state, so neither costs an object.
 */
export class DeviceSocket extends WebSocket implements OrderedStream, TokenState {
  proto!: SessionProtocol;
  state: State = State.AwaitHello;
  app = '';
  device = '';
  sess = '';
  /** Source address, while the connection has not said hello (its per-address budget). */
  peer = '';
  /** App named in the connect URL (?app=), checked against the token. */
  appHint: string | undefined = undefined;
  /** Before Ready: when the hello is due (monotonicMs). */
  helloBy = 0;
  /** Once Ready: the token's expiry, wall-clock seconds (its exp). */
  expiresAt = 0;
  hbMs = 0;
  hbStreak = 0;
  /** The last ping, or the welcome (monotonicMs). */
  lastBeat = 0;
  lastSeq = 0;
  /** The device announced receipts in hello (`"recv":true`). */
  receipts = false;
  /** Highest receipt seq passed to the store on this connection (at most lastSeq). */
  recvSeq = 0;
  tags: string[] = [];
  alias: string | null = null;
  /** Update-rate bucket, made at the first update (most devices never send one). */
  updates: TokenState | null = null;
  /** Frame-rate bucket (common/ratelimit), on monotonicMs. */
  tokens = 0;
  tokensAt = 0;
  pending: HeldPush[] | null = null;
  resyncAgain = false;
  blocked = false;
  /** The TCP socket under the WebSocket: corked while a batch of pushes is written to it. */
  raw: Duplex | null = null;
}

// Shared listeners (one function for all sockets, `this` is the socket): no closure per connection.
export const onSocketMessage = function (this: DeviceSocket, data: RawData, isBinary: boolean) {
  this.proto.onFrame(this, data, isBinary);
} as (...args: unknown[]) => void;
export const onSocketClose = function (this: DeviceSocket, code: number) {
  this.proto.host.onClose(this, code);
} as (...args: unknown[]) => void;
// 'close' follows every 'error'; the hub cleans up there.
export const onSocketError = () => {};

/** Distinct tag sets shared between sessions (see SessionProtocol.sharedTags). */
const SHARED_TAG_SETS = 4096;
/** Characters in all shared tag sets together (a set of 64 long tags is ~4 KB). */
const SHARED_TAG_CHARS = 256 * 1024;
const NO_TAGS: string[] = Object.freeze([]) as unknown as string[];

const ALIAS_NOT_OWNED = (frame: string) =>
  `${frame}: alias: not the alias in the device token (the app server binds aliases)`;

export function closeWith(ws: DeviceSocket, code: number, reason: string): void {
  if (ws.state === State.Closing) return;
  ws.state = State.Closing;
  ws.close(code, reason.slice(0, 120));
}

/** What the session protocol needs from the hub (the registry). */
export interface SessionHost {
  /** The device authenticated: this socket is now its session (an older one is closed). */
  attach(ws: DeviceSocket): boolean;
  onClose(ws: DeviceSocket, code: number): void;
  /** Another gateway held the device: close that session there. */
  kickRemote(gateway: string, app: string, device: string, sess: string): void;
}

/** Who wants to know which pushes were written to which device and which were acked (adaptive throttling). */
export interface DeliveryWatch {
  sent(app: string, device: string, id: string): void;
  acked(app: string, device: string, ids: readonly string[]): void;
}

export interface SessionOptions {
  /** Pushes written and acked, for the per-app adaptive throttling (common/ratelimit/adaptive.ts). */
  deliveryWatch?: DeliveryWatch;
  gatewayId: string;
  frameRate: number;
  /** Update frames a device may send per minute (burst 10). */
  tagUpdatesPerMinute: number;
  heartbeat: HeartbeatPolicy;
  secretOf(app: string): string | undefined;
}

/**
 * The per-connection protocol (one instance per hub, shared by every socket): frame rate,
 * hello and authentication, ping/pong with the adaptive heartbeat, acks and receipts (batched), tag and
 * alias updates, bye, and releasing presence when the socket closes.
 */
export class SessionProtocol {
  private sessionCounter = 0;
  /**
   * One copy of each app name and of each tag set held by sessions (most devices of an app
   * share a few tag sets), instead of a copy per connection: live heap per connection (issue 15).
   * App names are bounded by the configured apps (the token was verified with the app's
   * secret); tag sets by SHARED_TAG_SETS and SHARED_TAG_CHARS (devices choose their tags, so
   * the table's size is bounded, not its content), beyond which a session keeps its own array.
   */
  private readonly appNames = new Map<string, string>();
  private readonly tagSets = new Map<string, string[]>();
  private tagSetChars = 0;
  private readonly bootId = Date.now().toString(36);
  private readonly frameRate: TokenRate;
  private readonly updateRate: TokenRate;
  readonly acks: AckBatcher<DeviceSocket>;

  constructor(
    readonly host: SessionHost,
    private readonly store: DeviceStore,
    private readonly orderer: DeliveryOrderer<DeviceSocket>,
    private readonly status: StatusCounts,
    private readonly metrics: GatewayMetrics,
    private readonly opts: SessionOptions,
    private readonly log: Logger,
  ) {
    this.frameRate = { perSecond: opts.frameRate, burst: opts.frameRate * 2 };
    this.updateRate = { perSecond: opts.tagUpdatesPerMinute / 60, burst: 10 };
    const acksRemoved = metrics.acks.labels('removed');
    this.acks = new AckBatcher(store, {
      applied: (ws, { removed, unknown, delivered }) => {
        if (removed.length) acksRemoved.inc(removed.length);
        for (const id of removed) status.add(id, 'acked');
        for (const id of delivered) status.add(id, 'delivered');
        if (removed.length) opts.deliveryWatch?.acked(ws.app, ws.device, removed);
        if (unknown.length) {
          metrics.acks.inc({ result: 'unknown' }, unknown.length);
          if (ws.readyState === WebSocket.OPEN)
            ws.send(encodeError({ code: 'unknown_id', message: 'no such unacked message', ids: unknown }));
        }
      },
      failed: (app, err) => log.warn({ err, app }, 'acks failed'),
    });
  }

  /** A new socket passed admission and must say hello by `helloBy` (`helloBy`, `now`: monotonicMs). */
  opened(ws: DeviceSocket, appHint: string | undefined, helloBy: number, now: number): void {
    ws.proto = this;
    ws.appHint = appHint;
    ws.helloBy = helloBy;
    ws.tokens = this.frameRate.burst;
    ws.tokensAt = now;
  }

  onFrame(ws: DeviceSocket, data: RawData, isBinary: boolean): void {
    if (ws.state === State.Closing) return this.whileClosing(ws, data, isBinary);
    const now = monotonicMs();
    if (!takeToken(ws, this.frameRate, now))
      return this.reject(ws, CloseCode.policyViolation, 'frame flood', 'flood');
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
        if (frame.recv !== undefined && !this.receipt(ws, 'ping', frame.recv)) return;
        return this.ping(ws, now);
      case 'ack':
        return this.acks.add(ws, frame.ids);
      case 'recv':
        this.receipt(ws, 'recv', frame.seq);
        return;
      case 'update':
        this.update(ws, frame).catch((err: unknown) => this.internalError(ws, err, 'update'));
        return;
      case 'bye':
        this.bye(ws).catch((err: unknown) => this.internalError(ws, err, 'bye'));
        return;
    }
  }

  /**
   * A receipt (`recv` frame, or `recv` on a ping): the device read every push up to `seq` on this
   * connection. Only what was written to this connection counts: `seq` is clamped to the highest
   * seq written (a device cannot have read more; a hostile one gains nothing by naming more),
   * and a receipt at or below one already passed on costs nothing. False when the connection
   * was closed because hello did not announce receipts.
   */
  private receipt(ws: DeviceSocket, frame: 'recv' | 'ping', seq: number): boolean {
    if (!ws.receipts) {
      if (ws.state !== State.Closing)
        this.reject(
          ws,
          CloseCode.policyViolation,
          `${frame}: recv: not announced in hello ("recv":true)`,
          'invalid',
        );
      return false;
    }
    const upto = seq < ws.lastSeq ? seq : ws.lastSeq;
    if (upto <= ws.recvSeq) return true;
    ws.recvSeq = upto;
    this.acks.receipt(ws, upto);
    return true;
  }

  /**
   * A closing session (drain, replaced, timed out) still applies the acks and receipts that
   * reach it: the device handled (or read) those pushes, and dropping its acks would send them
   * all again on its next connection. Every other frame is ignored.
   */
  private whileClosing(ws: DeviceSocket, data: RawData, isBinary: boolean): void {
    if (!ws.sess || isBinary) return;
    const parsed = parseClientFrame(data.toString());
    if (!parsed.ok) return;
    const f = parsed.frame;
    if (f.t === 'ack') this.acks.add(ws, f.ids);
    else if (f.t === 'recv') this.receipt(ws, 'recv', f.seq);
    else if (f.t === 'ping' && f.recv !== undefined) this.receipt(ws, 'ping', f.recv);
  }

  /** The shared, frozen copy of a sorted tag set (never changed in place: updates make a new array). */
  private sharedTags(tags: string[]): string[] {
    if (tags.length === 0) return NO_TAGS;
    const key = tags.join('\u0000');
    const shared = this.tagSets.get(key);
    if (shared) return shared;
    if (this.tagSets.size >= SHARED_TAG_SETS || this.tagSetChars + key.length > SHARED_TAG_CHARS) return tags;
    this.tagSetChars += key.length;
    Object.freeze(tags);
    this.tagSets.set(key, tags);
    return tags;
  }

  private reject(ws: DeviceSocket, code: number, reason: string, metric: string) {
    this.metrics.framesRejected.inc({ reason: metric });
    closeWith(ws, code, reason);
  }

  private internalError(ws: DeviceSocket, err: unknown, what: string) {
    this.log.warn({ err, device: ws.device }, `${what} failed`);
    closeWith(ws, CloseCode.tryAgainLater, 'temporary failure, retry');
  }

  private async hello(ws: DeviceSocket, frame: HelloFrame) {
    const check = verifyDeviceTokenSync(frame.token, this.opts.secretOf, ws.appHint);
    if (!check.ok) {
      const expired = check.reason === 'expired';
      this.metrics.connects.inc({ result: expired ? 'token_expired' : 'auth_failed' });
      closeWith(ws, expired ? CloseCode.tokenExpired : CloseCode.authFailed, `auth: ${check.reason}`);
      return;
    }
    const { app, device } = check.claims;
    // Aliases are owned by the app server: the device has the alias its token names (or none).
    // Announcing another one is refused, so no device can take a user's alias by a frame.
    if (frame.alias !== undefined && frame.alias !== check.claims.alias) {
      this.metrics.connects.inc({ result: 'bad_hello' });
      return this.reject(ws, CloseCode.policyViolation, ALIAS_NOT_OWNED('hello'), 'alias');
    }
    let appName = this.appNames.get(app);
    if (appName === undefined) this.appNames.set(app, (appName = app));
    ws.app = appName;
    ws.device = device;
    ws.receipts = frame.recv === true;
    if (!this.host.attach(ws)) {
      this.metrics.connects.inc({ result: 'overload' });
      return closeWith(ws, CloseCode.tryAgainLater, 'connection limit reached');
    }
    ws.sess = `${this.bootId}.${(++this.sessionCounter).toString(36)}`;
    // Whole seconds (a JWT's exp may carry a fraction): an integer field stays unboxed.
    ws.expiresAt = Math.floor(check.claims.exp);

    // From the claim on, routed pushes for this device wait until the first inbox page (read
    // atomically with the claim) has been written.
    this.orderer.hold(ws);
    const announcedTags = frame.tags ? [...new Set(frame.tags)].sort() : undefined;
    const claim = await this.store.claim(
      app,
      device,
      { gateway: this.opts.gatewayId, session: ws.sess },
      { tags: announcedTags, alias: check.claims.alias },
    );
    if (claim.previous && claim.previous.gateway !== this.opts.gatewayId) {
      this.host.kickRemote(claim.previous.gateway, app, device, claim.previous.session);
    }
    let tags = announcedTags ?? claim.tags ?? [];
    const alias = check.claims.alias;
    // A device reconnecting with the tags and alias the indexes hold for it (the common case in
    // a reconnect storm) skips the round trips. Only the index mark says so: the meta's tags are
    // written by the claim, before the indexes, so after a hello that failed half way they name
    // a registration the indexes never got.
    const known = claim.indexed !== undefined && claim.indexed === registrationMark({ tags, alias });
    let refusedTags: TagLimitError | undefined;
    if (!known) {
      try {
        await this.store.register(
          app,
          device,
          { tags, alias },
          { tags: claim.tags, alias: claim.alias, indexed: claim.indexed },
          true,
        );
      } catch (err) {
        if (!(err instanceof TagLimitError)) throw err;
        // The app is at its tag cap: the device keeps the tags it had (the claim wrote the new
        // ones to its meta; they are written back) and is told why.
        refusedTags = err;
        tags = claim.tags ?? [];
        await this.store.register(app, device, { tags, alias }, { tags, alias: claim.alias }, false);
      }
    }
    if (ws.readyState !== WebSocket.OPEN || (ws.state as State) === State.Closing) return;
    const hb = initialHeartbeat(this.opts.heartbeat, claim.learnedHeartbeatMs);
    ws.hbMs = hb.intervalMs;
    ws.lastBeat = monotonicMs();
    ws.tags = this.sharedTags(tags);
    ws.alias = alias;
    ws.state = State.Ready;
    this.metrics.connects.inc({ result: 'accepted' });
    ws.send(
      encodeWelcome({
        gateway: this.opts.gatewayId,
        session: ws.sess,
        hb: ws.hbMs,
        tags,
        alias,
        now: Date.now(),
      }),
    );
    if (refusedTags) ws.send(encodeError({ code: 'tag_limit', message: refusedTags.message }));
    await this.orderer.resync(ws, claim.lastSeq, claim.firstPage);
  }

  /**
   * Redis lost or rewound state: write this session's presence, tags and alias back (as hello
   * did), then replay its inbox from the start, since seqs there may now be below what the
   * connection has seen.
   */
  async reassert(ws: DeviceSocket): Promise<void> {
    if (ws.state !== State.Ready) return;
    const reg = { tags: ws.tags, alias: ws.alias };
    const claim = await this.store.claim(
      ws.app,
      ws.device,
      { gateway: this.opts.gatewayId, session: ws.sess },
      reg,
    );
    await this.store.register(
      ws.app,
      ws.device,
      reg,
      { tags: claim.tags, alias: claim.alias, indexed: claim.indexed },
      true,
    );
    // Seqs restart in the store: receipts of this connection start again from the replay.
    ws.recvSeq = 0;
    await this.orderer.rewound(ws);
  }

  private ping(ws: DeviceSocket, now: number) {
    const next = onBeat(this.opts.heartbeat, { intervalMs: ws.hbMs, streak: ws.hbStreak }, now - ws.lastBeat);
    ws.hbMs = next.intervalMs;
    ws.hbStreak = next.streak;
    ws.lastBeat = now;
    ws.send(encodePong(ws.hbMs));
  }

  private async update(ws: DeviceSocket, frame: UpdateFrame) {
    const now = monotonicMs();
    ws.updates ??= fullBucket(this.updateRate, now);
    if (!takeToken(ws.updates, this.updateRate, now)) {
      this.metrics.framesRejected.inc({ reason: 'update_rate' });
      ws.send(
        encodeError({
          code: 'rate_limited',
          message: `update: more than ${this.opts.tagUpdatesPerMinute} per minute; not applied`,
        }),
      );
      return;
    }
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
    if (tags.length > MAX_TAGS)
      return this.reject(ws, CloseCode.policyViolation, `update: more than ${MAX_TAGS} tags`, 'invalid');
    if (frame.alias !== undefined && frame.alias !== ws.alias)
      return this.reject(ws, CloseCode.policyViolation, ALIAS_NOT_OWNED('update'), 'alias');
    const alias = ws.alias;
    const mine = this.sharedTags(tags);
    ws.tags = mine;
    try {
      await this.store.register(ws.app, ws.device, { tags, alias }, before, false);
    } catch (err) {
      if (!(err instanceof TagLimitError)) throw err;
      // Nothing was written: the device keeps its tags.
      if (ws.tags === mine) ws.tags = before.tags;
      this.metrics.framesRejected.inc({ reason: 'tag_limit' });
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeError({ code: 'tag_limit', message: err.message }));
      return;
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(encodeUpdated({ tags, alias }));
  }

  private async bye(ws: DeviceSocket) {
    await this.store.forget(ws.app, ws.device, { tags: ws.tags, alias: ws.alias });
    ws.tags = NO_TAGS;
    closeWith(ws, CloseCode.normal, 'bye');
  }

  /** The socket of an authenticated session closed: release presence, touch last-seen. */
  released(ws: DeviceSocket, code: number): void {
    this.metrics.disconnects.inc({ code: String(code) });
    const learned = code === CloseCode.heartbeatTimeout ? ws.hbMs : ws.hbMs || undefined;
    const { app, device, sess, tags } = ws;
    this.store
      .release(app, device, sess, learned)
      .then(() => this.store.touch(app, device, tags))
      .catch((err: unknown) => this.log.warn({ err, device }, 'release presence failed'));
  }
}
