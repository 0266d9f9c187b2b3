import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { CloseCode } from '../common/protocol/close-codes.js';
import {
  PROTOCOL_VERSION,
  SUBPROTOCOL,
  MAX_ACK_IDS,
  type DrainFrame,
  type ErrorFrame,
  type PushFrame,
  type WelcomeFrame,
} from '../common/protocol/frames.js';

/**
 * A device client for the pushgate protocol v1 (gateway/PROTOCOL.md): asks the locator for
 * gateways, connects and says hello, keeps the advised heartbeat, reports what it has read
 * (receipts), acknowledges pushes, drops duplicates by message id, and reconnects (drain hint
 * first, then backoff with full jitter) until stopped. Used by the simulator, the benchmark
 * and the integration tests.
 */
export interface DeviceClientOptions {
  app: string;
  device: string;
  /** A device token, or a function returning a fresh one (called again after 4002). */
  token: string | (() => Promise<string>);
  /** Gateway WebSocket URLs to try in order (used when there is no locator, or it fails). */
  endpoints?: string[];
  /** Base URL of a locator (a gateway or `pushgate locator`), e.g. http://10.0.0.1:8080. */
  locatorUrl?: string;
  /** The device's region (required with locatorUrl: the locator ranks nearest first). */
  region?: string;
  tags?: string[];
  alias?: string | null;
  /** Acknowledge each push after emitting it (default true). */
  autoAck?: boolean;
  /**
   * Report what the device has read (default true): hello says `"recv":true`, and after each
   * read of the socket that held pushes, one `recv` frame names the highest seq read, before
   * the pushes are handled, so the app's message status counts them `delivered` before (or
   * without) their acks. With autoAck the acks of that read follow in the same event-loop turn
   * and count the pushes delivered themselves, so no separate `recv` frame is sent (it would
   * only double the frames a device sends per read, against the gateway's --frame-rate).
   */
  receipts?: boolean;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Message ids remembered for dedupe (default 2048). */
  dedupeSize?: number;
  /** Local source address for the TCP connection (spread load tests over 127.x addresses). */
  localAddress?: string;
  /** Send pings at the advised interval (default true). */
  heartbeat?: boolean;
  /** Reconnect after a close (default true). */
  reconnect?: boolean;
  /** How long to wait for `welcome` after the upgrade before giving up on a gateway (default 10 s). */
  welcomeTimeoutMs?: number;
  /** How long to wait for a pong (default: pongWaitMs(hb), derived from the advised interval). */
  pongWaitMs?: number;
}

/**
 * How long a device waits for the answer to a ping before it judges the gateway dead: half the
 * advised interval, at least 1 s, at most 20 s (PROTOCOL.md section 5, "Liveness"). A gateway
 * answers a ping at once, so a missing pong means a frozen process, a dead path or a black-holed
 * NAT mapping; the device then drops the connection and moves to the next endpoint. With a ping
 * every `hb`, a frozen gateway is noticed within 1.5 x hb.
 */
export function pongWaitMs(hbMs: number): number {
  return Math.max(1000, Math.min(hbMs / 2, 20_000));
}

export interface DeviceClientEvents {
  welcome: [WelcomeFrame];
  push: [PushFrame];
  duplicate: [PushFrame];
  drain: [DrainFrame];
  serverError: [ErrorFrame];
  updated: [{ tags: string[]; alias: string | null }];
  close: [number, string];
  /** The client gave up (auth failure, session replaced, or stop()). */
  stopped: [number, string];
  /** The gateway did not answer in time (no welcome, or no pong): the connection is dropped. */
  unresponsive: [string];
}

const NO_RECONNECT: ReadonlySet<number> = new Set([
  CloseCode.authFailed,
  CloseCode.sessionReplaced,
  CloseCode.normal,
]);

export class DeviceClient extends EventEmitter<DeviceClientEvents> {
  private ws: WebSocket | undefined;
  private stopped = false;
  private attempt = 0;
  private endpointIndex = 0;
  private drainHint: string[] = [];
  private drainWithinMs = 0;
  private hbTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Armed while an answer from the gateway is due (welcome after the upgrade, pong after a ping). */
  private answerTimer: NodeJS.Timeout | undefined;
  private hbMs = 0;
  private seen = new Set<string>();
  private seenOrder: string[] = [];
  private ackQueue: string[] = [];
  private ackScheduled = false;
  /** Frames of the current read of the socket, handled together once it is parsed. */
  private readFrames: { t?: string }[] = [];
  /** The socket the current read came from (a receipt names seqs of its connection). */
  private readWs: WebSocket | undefined;
  /** Highest push seq in the current read (0: none). */
  private readSeq = 0;
  private readScheduled = false;
  private readonly endRead = () => this.handleRead();
  /** Receipts are on for this client (off after a gateway that predates them refused hello). */
  private receipts: boolean;
  private token: string | undefined;
  tags: string[];
  alias: string | null;
  /** Gateway id of the current connection ('' while disconnected). */
  gateway = '';
  connected = false;
  /** Count of welcomes (first connect + reconnects). */
  connects = 0;

  constructor(private readonly opts: DeviceClientOptions) {
    super();
    // The locator ranks by nearness to the device's region and refuses a request without one.
    if (opts.locatorUrl && !opts.region) throw new Error('DeviceClient: locatorUrl needs a region');
    this.tags = opts.tags ?? [];
    this.alias = opts.alias ?? null;
    this.receipts = opts.receipts !== false;
  }

  /** Connect (and keep reconnecting until stop()). Resolves on the first welcome. */
  start(): Promise<WelcomeFrame> {
    this.stopped = false;
    const first = new Promise<WelcomeFrame>((resolve, reject) => {
      const onWelcome = (w: WelcomeFrame) => {
        this.off('stopped', onStop);
        resolve(w);
      };
      const onStop = (code: number, reason: string) => {
        this.off('welcome', onWelcome);
        reject(new Error(`device ${this.opts.device} stopped: ${code} ${reason}`));
      };
      this.once('welcome', onWelcome);
      this.once('stopped', onStop);
    });
    void this.connect();
    return first;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.hbTimer);
    this.clearAnswer();
    this.ws?.close(CloseCode.normal, 'client stop');
    this.emit('stopped', CloseCode.normal, 'client stop');
  }

  /** Change tags and/or alias; resolves when the gateway confirms. */
  update(change: {
    set?: string[];
    add?: string[];
    remove?: string[];
    alias?: string | null;
  }): Promise<{ tags: string[]; alias: string | null }> {
    return new Promise((resolve, reject) => {
      if (!this.ws || !this.connected) return reject(new Error('not connected'));
      // Answered by `updated`, or refused by an error frame (tag_limit, rate_limited).
      const onUpdated = (u: { tags: string[]; alias: string | null }) => {
        this.off('serverError', onRefused);
        resolve(u);
      };
      const onRefused = (e: ErrorFrame) => {
        if (e.code !== 'tag_limit' && e.code !== 'rate_limited') return;
        this.off('updated', onUpdated);
        this.off('serverError', onRefused);
        reject(new Error(`update refused: ${e.code}: ${e.message}`));
      };
      this.once('updated', onUpdated);
      this.on('serverError', onRefused);
      this.ws.send(JSON.stringify({ t: 'update', ...change }));
    });
  }

  /** Unregister this device (leaves tag and alias indexes) and stop. */
  bye(): void {
    this.stopped = true;
    clearTimeout(this.hbTimer);
    this.ws?.send('{"t":"bye"}');
  }

  ack(ids: string[]): void {
    this.ackQueue.push(...ids);
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      const ws = this.ws;
      while (this.ackQueue.length && ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ t: 'ack', ids: this.ackQueue.splice(0, MAX_ACK_IDS) }));
      }
      this.ackQueue.length = 0;
    });
  }

  private async endpoints(): Promise<string[]> {
    if (this.drainHint.length) {
      const hint = this.drainHint;
      this.drainHint = [];
      return hint;
    }
    if (this.opts.locatorUrl) {
      try {
        const u = new URL('/v1/locate', this.opts.locatorUrl);
        u.searchParams.set('app', this.opts.app);
        u.searchParams.set('device', this.opts.device);
        if (this.opts.region) u.searchParams.set('region', this.opts.region);
        const res = await fetch(u, { signal: AbortSignal.timeout(3000) });
        if (res.ok) {
          const body = (await res.json()) as { endpoints: { url: string }[] };
          if (body.endpoints.length) return body.endpoints.map((e) => e.url);
        }
      } catch {
        // fall back to the static list
      }
    }
    return this.opts.endpoints ?? [];
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let url: string | undefined;
    try {
      const list = await this.endpoints();
      url = list[this.endpointIndex++ % Math.max(1, list.length)];
      if (!this.token || typeof this.opts.token === 'string') this.token = await this.resolveToken();
    } catch {
      url = undefined;
    }
    if (this.stopped) return;
    if (!url) return this.retry();
    const ws = new WebSocket(url, SUBPROTOCOL, {
      perMessageDeflate: false,
      // A 127.x source only reaches 127.x: a pod's address needs the OS's own choice.
      localAddress: this.opts.localAddress && isLoopbackUrl(url) ? this.opts.localAddress : undefined,
      handshakeTimeout: 10_000,
    });
    this.ws = ws;
    ws.on('open', () => {
      this.expectAnswer(ws, this.opts.welcomeTimeoutMs ?? 10_000, 'no welcome');
      ws.send(
        JSON.stringify({
          t: 'hello',
          v: PROTOCOL_VERSION,
          token: this.token,
          tags: this.tags,
          alias: this.alias,
          ...(this.receipts ? { recv: true } : {}),
        }),
      );
    });
    ws.on('message', (data) => this.onFrame(ws, data.toString()));
    ws.on('error', () => {});
    ws.on('close', (code, reasonBuf) => this.onClose(ws, code, reasonBuf.toString()));
  }

  private async resolveToken(): Promise<string> {
    return typeof this.opts.token === 'string' ? this.opts.token : this.opts.token();
  }

  /**
   * Liveness from the device's side: the gateway must answer within `ms` (any frame will do;
   * the awaited one is welcome or pong). A gateway that does not is dropped without a closing
   * handshake (a frozen one would never complete it), and the next endpoint is tried.
   */
  private expectAnswer(ws: WebSocket, ms: number, what: string) {
    // An answer already due keeps its (earlier) deadline: pings faster than the wait must not
    // push it out for ever.
    if (this.answerTimer) return;
    this.answerTimer = setTimeout(() => {
      this.answerTimer = undefined;
      if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
      this.emit('unresponsive', `${what} within ${ms} ms from ${this.gateway || 'gateway'}`);
      ws.terminate();
    }, ms);
    this.answerTimer.unref();
  }

  private clearAnswer() {
    clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
  }

  /**
   * One frame as the socket's read parses it: kept until every frame of the read is parsed
   * (ws emits them one after another in the same turn; the microtask runs after the last), so
   * one receipt covers the whole read and goes out before any push is handled.
   */
  private onFrame(ws: WebSocket, text: string) {
    if (ws === this.ws) this.clearAnswer();
    let f: { t?: string; seq?: unknown };
    try {
      f = JSON.parse(text) as { t?: string; seq?: unknown };
    } catch {
      return;
    }
    if (this.readWs !== ws && this.readFrames.length) this.handleRead();
    this.readWs = ws;
    if (f.t === 'push' && typeof f.seq === 'number' && f.seq > this.readSeq) this.readSeq = f.seq;
    this.readFrames.push(f);
    if (this.readScheduled) return;
    this.readScheduled = true;
    queueMicrotask(this.endRead);
  }

  private handleRead() {
    this.readScheduled = false;
    const frames = this.readFrames;
    const seq = this.readSeq;
    const ws = this.readWs!;
    this.readFrames = [];
    this.readSeq = 0;
    this.readWs = undefined;
    if (seq > 0 && this.receipts && this.opts.autoAck === false && ws.readyState === WebSocket.OPEN)
      ws.send(`{"t":"recv","seq":${seq}}`);
    for (const f of frames) this.handleFrame(ws, f);
  }

  private handleFrame(ws: WebSocket, f: { t?: string }) {
    switch (f.t) {
      case 'welcome': {
        const w = f as WelcomeFrame;
        this.connected = true;
        this.connects++;
        this.attempt = 0;
        this.gateway = w.gateway;
        this.tags = w.tags;
        this.alias = w.alias;
        this.hbMs = w.hb;
        this.scheduleHeartbeat(ws);
        this.emit('welcome', w);
        return;
      }
      case 'push': {
        const p = f as PushFrame;
        if (this.seen.has(p.id)) {
          // Delivered before; our ack may have been lost. Ack again, do not surface it.
          if (this.opts.autoAck !== false) this.ack([p.id]);
          this.emit('duplicate', p);
          return;
        }
        this.remember(p.id);
        this.emit('push', p);
        if (this.opts.autoAck !== false) this.ack([p.id]);
        return;
      }
      case 'pong':
        this.hbMs = (f as { hb: number }).hb;
        return;
      case 'updated': {
        const u = f as { tags: string[]; alias: string | null };
        this.tags = u.tags;
        this.alias = u.alias;
        this.emit('updated', u);
        return;
      }
      case 'drain': {
        const d = f as DrainFrame;
        this.drainHint = d.reconnect;
        this.drainWithinMs = d.within;
        this.emit('drain', d);
        return;
      }
      case 'error':
        this.emit('serverError', f as ErrorFrame);
        return;
    }
  }

  private remember(id: string) {
    this.seen.add(id);
    this.seenOrder.push(id);
    const max = this.opts.dedupeSize ?? 2048;
    if (this.seenOrder.length > max) this.seen.delete(this.seenOrder.shift()!);
  }

  private scheduleHeartbeat(ws: WebSocket) {
    clearTimeout(this.hbTimer);
    if (this.opts.heartbeat === false) return;
    this.hbTimer = setTimeout(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send('{"t":"ping"}');
      this.expectAnswer(ws, this.opts.pongWaitMs ?? pongWaitMs(this.hbMs), 'no pong');
      this.scheduleHeartbeat(ws);
    }, this.hbMs);
    this.hbTimer.unref();
  }

  private onClose(ws: WebSocket, code: number, reason: string) {
    if (ws !== this.ws) return;
    clearTimeout(this.hbTimer);
    this.clearAnswer();
    // A gateway older than receipts refuses the hello field (1008 naming "recv"): say hello
    // without it from now on; acks still count every push delivered there.
    if (!this.connected && code === CloseCode.policyViolation && this.receipts && /\brecv\b/.test(reason))
      this.receipts = false;
    this.connected = false;
    this.gateway = '';
    this.emit('close', code, reason);
    if (this.stopped) return;
    if (NO_RECONNECT.has(code) || this.opts.reconnect === false) {
      this.stopped = true;
      this.emit('stopped', code, reason);
      return;
    }
    if (code === CloseCode.tokenExpired) {
      if (typeof this.opts.token === 'string') {
        this.stopped = true;
        this.emit('stopped', code, reason);
        return;
      }
      this.token = undefined;
    }
    if (code === CloseCode.serviceRestart) {
      this.endpointIndex = 0;
      const delay = Math.random() * this.drainWithinMs;
      this.retryTimer = setTimeout(() => void this.connect(), delay);
      return;
    }
    this.retry();
  }

  /** Full-jitter exponential backoff (AWS architecture blog): random in [0, min(max, base * 2^n)]. */
  private retry() {
    if (this.stopped) return;
    const min = this.opts.backoffMinMs ?? 500;
    const max = this.opts.backoffMaxMs ?? 30_000;
    const delay = Math.random() * Math.min(max, min * 2 ** this.attempt++);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }
}

/** True when the URL's host is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
}
