import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { PgRedis } from '../redis/connection.js';
import { deviceBucket, type RedisKeys } from '../redis/keys.js';
import {
  decodeDeferredEntry,
  encodeDeferredEntry,
  type AppLimitConfig,
  type DeferredEntry,
  type DeviceCapConfig,
} from './app-limit.js';

/**
 * Per-device daily caps of a RateLimitPolicy (spec.perDevice): at most `messagesPerDay`
 * messages of one app reach one device per day, of them at most `highPriorityMessagesPerDay`
 * high-priority ones.
 *
 * The day is the UTC calendar day (counts start again at 00:00 UTC), whatever the device's time
 * zone: pushgate does not know a device's zone, and one boundary for all keeps the counters one
 * key per device bucket and day. A message is counted when it passes the cap (at acceptance, or
 * when it is released on a later day), not when it is delivered.
 *
 * A message over the cap is not dropped: it is held (durably, in Redis, in acceptance order per
 * device) and released after 00:00 UTC of the next day, counted against that day's cap (a
 * device with more held than a day allows waits another day), or it expires at its TTL first;
 * either way its message status counts it. A device that already holds a whole day's allowance
 * (messagesPerDay held) refuses more for that recipient (the push API says so: 429 when no
 * recipient took the message, `deviceCapRefused` in the answer otherwise): so an app hammering
 * one device keeps at most 2 x messagesPerDay of it in Redis.
 *
 * Cheap in Redis: the state is in the device bucket's slot ({<app>:<bucket>}, keys.deviceCap),
 * one script call per device bucket a message touches (not per device), the day's counts a hash
 * per bucket that expires an hour after its day, so a flood of device ids costs at most a day's
 * worth of hash fields, gone the next day.
 */

export const DAY_MS = 86_400_000;
/** The UTC day number of a time (ms since epoch). */
export const utcDay = (now: number) => Math.floor(now / DAY_MS);
/** Start of the next UTC day (ms). */
export const nextUtcDay = (now: number) => (utcDay(now) + 1) * DAY_MS;
/** Every recipient of a push is refused by its device's daily cap (each already holds a day's allowance): 429. */
export class DeviceCapFullError extends Error {
  override name = 'DeviceCapFullError';
  constructor(
    readonly app: string,
    readonly messagesPerDay: number,
    readonly retryAfterMs: number,
    readonly policy?: string,
  ) {
    super(
      `app '${app}': every recipient already has a whole day's allowance (perDevice.messagesPerDay ${messagesPerDay}${policy ? ` of RateLimitPolicy ${policy}` : ''}) waiting for the next UTC day; retry after ${Math.ceil(retryAfterMs / 1000)} s`,
    );
  }
}

/** The day's counts are kept this long after the day ends (a late release still finds them). */
const COUNT_GRACE_MS = 3_600_000;

const highCap = (c: DeviceCapConfig) => c.highPriorityMessagesPerDay ?? c.messagesPerDay;

export interface CapResult {
  /** Per device given: 1 = counted, goes on to the rate limit; 0 = held for the next day; -1 = refused. */
  codes: number[];
  held: number;
  refused: number;
  /** When what was held now is released (the next UTC day's start), 0 = none held. */
  releaseAt: number;
  /** Device buckets that hold something now (for the index the releasers look at). */
  heldBuckets: number[];
  /** Takes it all back (the rate limit refused the push after the cap counted it). */
  undo(): Promise<void>;
}

/** Checks (and counts) one message against the daily cap of each recipient: one script per device bucket. */
export async function admitDeviceCap(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  cap: DeviceCapConfig,
  devices: string[],
  message: { exp: number; body: string; priority: 'high' | 'normal' },
  now: number,
): Promise<CapResult> {
  const day = utcDay(now);
  const releaseAt = nextUtcDay(now);
  const groups = new Map<number, number[]>();
  devices.forEach((d, i) => {
    const b = deviceBucket(d);
    let g = groups.get(b);
    if (!g) groups.set(b, (g = []));
    g.push(i);
  });
  const codes = new Array<number>(devices.length).fill(1);
  const p = message.priority === 'high' ? 'h' : 'n';
  const heldBuckets: number[] = [];
  const entryOf = (i: number) =>
    encodeDeferredEntry({ exp: message.exp, acceptedAt: now, device: devices[i]!, body: message.body });
  await Promise.all(
    [...groups].map(async ([b, idx]) => {
      const [count, held, heldCount] = keys.deviceCap(app, b, day);
      const args: string[] = [];
      for (const i of idx) args.push(devices[i]!, p, entryOf(i));
      const r = await redis.pgDeviceCapAdmit(
        count,
        held,
        heldCount,
        cap.messagesPerDay,
        highCap(cap),
        cap.messagesPerDay,
        (day + 1) * DAY_MS + COUNT_GRACE_MS,
        releaseAt,
        idx.length,
        ...args,
      );
      idx.forEach((i, k) => (codes[i] = Number(r[k])));
      if (r.some((c) => Number(c) === 0)) heldBuckets.push(b);
    }),
  );
  if (heldBuckets.length) {
    // The index says which buckets to look at, and from when (at most 1024 members per app).
    const idx = keys.deviceCapIndex(app);
    const m = redis.multi();
    for (const b of heldBuckets) m.zadd(idx, 'LT', releaseAt, String(b));
    m.pexpire(idx, 2 * DAY_MS);
    await m.exec();
  }
  const held = codes.filter((c) => c === 0).length;
  const undo = async () => {
    await Promise.all(
      [...groups].map(([b, idx]) => {
        const [count, heldList, heldCount] = keys.deviceCap(app, b, day);
        const args: string[] = [];
        for (const i of idx) args.push(devices[i]!, p, String(codes[i]), `${releaseAt}|${p}|${entryOf(i)}`);
        return redis.pgDeviceCapUndo(count, heldList, heldCount, idx.length, ...args);
      }),
    );
  };
  return {
    codes,
    held,
    refused: codes.filter((c) => c < 0).length,
    releaseAt: held ? releaseAt : 0,
    heldBuckets,
    undo,
  };
}

export interface DeviceCapReleaserOptions {
  redis: PgRedis;
  keys: RedisKeys;
  configs: { get(app: string): AppLimitConfig | undefined; apps(): string[] };
  /** Entries whose day has come, counted against today's cap: admit them to the app's rate limit (and store what may go). Throws = retried. */
  release(app: string, entries: DeferredEntry[]): Promise<void>;
  /** Held entries whose TTL ran out before their day. */
  expired(app: string, entries: DeferredEntry[]): void | Promise<void>;
  log: Logger;
  owner?: string;
  now?: () => number;
  leaseMs?: number;
  scanIntervalMs?: number;
  maxBatch?: number;
}

/**
 * Releases messages held by the daily cap when their day comes, in every gateway without a
 * leader: every `scanIntervalMs` each gateway reads the app's index of buckets that are due and
 * works those whose lease it gets. A batch stays in the bucket's releasing list until admitted
 * to the rate limit, so a gateway that dies mid-batch loses nothing (the next holder admits it
 * again; stores are idempotent by message id).
 */
export class DeviceCapReleaser {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly owner: string;
  private readonly now: () => number;
  readonly counts = { released: 0, expired: 0, failures: 0 };

  constructor(private readonly o: DeviceCapReleaserOptions) {
    this.owner = o.owner ?? `cap-${randomBytes(6).toString('hex')}`;
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => this.poke(), this.o.scanIntervalMs ?? 1000);
    this.timer.unref();
  }

  /** One scan now (unless one runs). */
  poke(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.scan()
      .catch((err: unknown) => {
        this.counts.failures++;
        this.o.log.warn({ err }, 'releasing messages held by the daily cap failed; the next scan retries');
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async scan(): Promise<void> {
    for (const app of this.o.configs.apps()) {
      const cfg = this.o.configs.get(app);
      if (!cfg?.perDevice) continue;
      const now = this.now();
      const due = await this.o.redis.zrangebyscore(
        this.o.keys.deviceCapIndex(app),
        '-inf',
        now,
        'LIMIT',
        0,
        64,
      );
      for (const b of due) await this.bucket(app, Number(b), cfg.perDevice);
    }
  }

  private async bucket(app: string, b: number, cap: DeviceCapConfig): Promise<void> {
    const { redis, keys } = this.o;
    for (let round = 0; round < 100 && !this.stopped; round++) {
      const now = this.now();
      const day = utcDay(now);
      const [count, held, heldCount, releasing, lease] = keys.deviceCap(app, b, day);
      const [code, raw, next] = await redis.pgDeviceCapRelease(
        count,
        held,
        heldCount,
        releasing,
        lease,
        this.owner,
        this.o.leaseMs ?? 10_000,
        now,
        cap.messagesPerDay,
        highCap(cap),
        (day + 1) * DAY_MS + COUNT_GRACE_MS,
        nextUtcDay(now),
        this.o.maxBatch ?? 500,
      );
      if (code === -1) return; // another gateway works it
      if (raw.length) {
        const entries = raw.map(decodeDeferredEntry);
        const live = entries.filter((e) => e.exp >= now);
        const dead = entries.filter((e) => e.exp < now);
        if (live.length) await this.o.release(app, live);
        if (dead.length) await this.o.expired(app, dead);
        await redis.pgLimitReleased(releasing, lease, this.owner);
        this.counts.released += live.length;
        this.counts.expired += dead.length;
      }
      if (code === 1) continue;
      const n = Number(next);
      if (n > now && raw.length === 0) {
        // Nothing more due: look again when the head is due (or tomorrow, when empty).
        await redis.zadd(keys.deviceCapIndex(app), n > 0 ? n : nextUtcDay(now), String(b));
        return;
      }
      if (n < 0 && raw.length === 0) {
        await redis.zadd(keys.deviceCapIndex(app), nextUtcDay(now), String(b));
        return;
      }
    }
  }
}
