import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';
import {
  APP_LIMIT_SHARDS,
  decodeDeferredEntry,
  releaseBurst,
  shardPlan,
  type AppLimitConfig,
  type DeferredEntry,
} from './app-limit.js';
import { parseAdaptiveState } from './adaptive.js';

/** The published app key of a policy without appIds: every app without a policy of its own. */
export const EVERY_APP_KEY = '*';

/**
 * The published limits, as every gateway sees them: the operator writes one hash
 * (keys.appLimitConfig: app -> AppLimitConfig JSON); this reads it every `refreshMs`, so an
 * edit of a RateLimitPolicy is in force within about a second on every gateway, no restart.
 * A malformed entry is logged and ignored (that app runs unlimited, as with no policy).
 * The entry `*` (a policy without appIds) is the limit of every app without an entry of its
 * own, each app with its own buckets and queues; the apps it covers are the ones this process
 * knows (`knownApps`, the gateway's apps) and the ones it has been asked about.
 */
export class AppLimitConfigs {
  private configs = new Map<string, AppLimitConfig>();
  private adaptive: Record<string, string> = {};
  private star: AppLimitConfig | undefined;
  private readonly starApps = new Map<string, AppLimitConfig>();
  private readonly seen = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private loaded = false;

  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    private readonly log: Logger,
    private readonly refreshMs = 1000,
    private readonly knownApps: () => Iterable<string> = () => [],
  ) {}

  get(app: string): AppLimitConfig | undefined {
    const own = this.configs.get(app);
    if (own || !this.star || app === EVERY_APP_KEY) return own;
    let c = this.starApps.get(app);
    if (!c) {
      this.starApps.set(app, (c = withAdaptiveFactor(this.star, this.adaptive[app])));
      this.seen.add(app);
    }
    return c;
  }

  /** The apps under a limit here: those with their own entry, and under `*` the known and seen ones. */
  apps(): string[] {
    const out = [...this.configs.keys()].filter((a) => a !== EVERY_APP_KEY);
    if (this.star)
      for (const a of new Set([...this.knownApps(), ...this.seen])) if (!this.configs.has(a)) out.push(a);
    return out;
  }

  async refresh(): Promise<void> {
    const [h, adaptive] = await Promise.all([
      this.redis.hgetall(this.keys.appLimitConfig()),
      this.redis.hgetall(this.keys.appLimitAdaptive()),
    ]);
    const next = new Map<string, AppLimitConfig>();
    for (const [app, json] of Object.entries(h)) {
      const c = parseAppLimitConfig(json);
      if (c) next.set(app, withAdaptiveFactor(c, adaptive[app]));
      else this.log.warn({ app }, 'ignoring a malformed published rate limit');
    }
    this.configs = next;
    this.adaptive = adaptive;
    this.star = next.get(EVERY_APP_KEY);
    this.starApps.clear();
    this.loaded = true;
  }

  async start(): Promise<void> {
    await this.refresh().catch((err: unknown) => this.log.warn({ err }, 'rate limits not read yet'));
    this.timer = setInterval(() => {
      this.refresh().catch((err: unknown) =>
        this.log.warn({ err }, 'rate limits refresh failed; keeping the last ones'),
      );
    }, this.refreshMs);
    this.timer.unref();
  }

  get ready(): boolean {
    return this.loaded;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/**
 * The limit in force: the published one, its rate times the adaptive factor (common/ratelimit/
 * adaptive.ts) when adaptive throttling is on. The shard plan keeps following the configured rate.
 */
export function withAdaptiveFactor(c: AppLimitConfig, state: string | undefined): AppLimitConfig {
  const a = parseAdaptiveState(state);
  if (!c.adaptive?.enabled || !a || a.factor >= 1) return c;
  const configured = c.configuredRatePerSecond ?? c.ratePerSecond;
  const floor = (configured * c.adaptive.minRatePercent) / 100;
  return {
    ...c,
    configuredRatePerSecond: configured,
    ratePerSecond: Math.max(floor, configured * a.factor, Number.MIN_VALUE),
  };
}

export function parseAppLimitConfig(json: string): AppLimitConfig | undefined {
  try {
    const c = JSON.parse(json) as Partial<AppLimitConfig>;
    if (typeof c.ratePerSecond !== 'number' || !(c.ratePerSecond > 0)) return undefined;
    if (typeof c.burst !== 'number' || !(c.burst >= 1)) return undefined;
    if (typeof c.maxDeferred !== 'number' || !(c.maxDeferred >= 0)) return undefined;
    return c as AppLimitConfig;
  } catch {
    return undefined;
  }
}

/** Writes the limits of apps into the published hash (the operator; tests). */
export async function publishAppLimits(
  redis: PgRedis,
  keys: RedisKeys,
  set: Record<string, AppLimitConfig>,
  remove: string[] = [],
): Promise<void> {
  const m = redis.multi();
  if (Object.keys(set).length)
    m.hset(
      keys.appLimitConfig(),
      Object.fromEntries(Object.entries(set).map(([a, c]) => [a, JSON.stringify(c)])),
    );
  if (remove.length) m.hdel(keys.appLimitConfig(), ...remove);
  await m.exec();
}

export interface ReleaserOptions {
  redis: PgRedis;
  keys: RedisKeys;
  configs: { get(app: string): AppLimitConfig | undefined; apps(): string[] };
  /** Store (and route) released messages; throws when they are not durable (the batch is retried). */
  store(app: string, entries: DeferredEntry[]): Promise<void>;
  /** Deferred messages whose TTL ran out before their turn. */
  expired(app: string, entries: DeferredEntry[]): void | Promise<void>;
  log: Logger;
  /** Who holds a shard's lease (unique per process). */
  owner?: string;
  leaseMs?: number;
  /** How often every shard of every limited app is looked at (orphans of a dead gateway). */
  scanIntervalMs?: number;
  /** Most messages one release call takes. */
  maxBatch?: number;
  /** Shortest pause between two release calls of one shard (batches at high rates). */
  minTickMs?: number;
}

/**
 * Releases deferred messages, in every gateway, without a leader: a gateway works a shard while
 * it holds the shard's lease (renewed by every release call). A gateway that defers a message
 * pokes its own releaser for that shard; every `scanIntervalMs` each gateway also tries every
 * shard of every limited app, so the shards of a gateway killed with -9 are taken over when its
 * lease runs out (leaseMs). A batch stays in the shard's releasing list until stored, so a
 * holder that dies mid-batch loses nothing: the next holder stores it again first (idempotent
 * by message id; a device dedupes a second delivery).
 */
export class AppLimitReleaser {
  private readonly workers = new Map<string, Promise<void>>();
  private readonly owner: string;
  private readonly leaseMs: number;
  private readonly maxBatch: number;
  private readonly minTickMs: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly wakeups = new Set<() => void>();
  /** Counters for metrics: released and expired messages. */
  readonly counts = { released: 0, expired: 0, batches: 0, failures: 0, borrowed: 0 };

  constructor(private readonly o: ReleaserOptions) {
    this.owner = o.owner ?? `rel-${randomBytes(6).toString('hex')}`;
    this.leaseMs = o.leaseMs ?? 3000;
    this.maxBatch = o.maxBatch ?? 500;
    this.minTickMs = o.minTickMs ?? 10;
  }

  start(): void {
    const scan = () => {
      for (const app of this.o.configs.apps()) for (let s = 0; s < APP_LIMIT_SHARDS; s++) this.poke(app, s);
    };
    scan();
    this.timer = setInterval(scan, this.o.scanIntervalMs ?? 1000);
    this.timer.unref();
  }

  /** Works the shard unless this process already does. */
  poke(app: string, shard: number): void {
    if (this.stopped) return;
    const key = `${app}\u0000${shard}`;
    if (this.workers.has(key)) return;
    const w = this.work(app, shard)
      .catch((err: unknown) => {
        this.counts.failures++;
        this.o.log.warn({ err, app, shard }, 'releasing deferred messages failed; the next scan retries');
      })
      .finally(() => this.workers.delete(key));
    this.workers.set(key, w);
  }

  /** Stops taking new batches and waits for the running ones to be stored. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const wake of this.wakeups) wake();
    await Promise.allSettled([...this.workers.values()]);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakeups.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeups.add(done);
    });
  }

  private async work(app: string, shard: number): Promise<void> {
    const [tat, queue, releasing, lease] = this.o.keys.appLimitShard(app, shard);
    let prepaid = 0;
    const lenders: Lenders = { next: shard + 1, busyUntil: new Map() };
    let lastCallAt = 0; // the first call of a worker takes the base window
    while (!this.stopped) {
      const cfg = this.o.configs.get(app);
      if (!cfg) return; // no longer limited: the scan stops looking; what waits is released if it comes back
      const plan = shardPlan(cfg);
      // A shard beyond the current plan (the policy shrank) drains at the share of shard s % n.
      const lim = plan.limits[shard % plan.shards]!;
      const callAt = Date.now();
      const sinceLast = lastCallAt ? callAt - lastCallAt : 0;
      lastCallAt = callAt;
      const [code, wait, raw, qlen] = await this.o.redis.pgLimitRelease(
        tat,
        queue,
        releasing,
        lease,
        this.owner,
        this.leaseMs,
        lim.intervalMs,
        releaseBurst(lim, sinceLast),
        this.maxBatch,
        prepaid,
      );
      prepaid = 0;
      if (code === -1) return; // another gateway holds it
      if (code === 0 && Number(wait) < 0) return; // empty
      if (raw.length) {
        const now = Date.now();
        const entries = raw.map(decodeDeferredEntry);
        const live = entries.filter((e) => e.exp >= now);
        const dead = entries.filter((e) => e.exp < now);
        if (live.length) await this.o.store(app, live);
        if (dead.length) await this.o.expired(app, dead);
        await this.o.redis.pgLimitReleased(releasing, lease, this.owner);
        this.counts.released += live.length;
        this.counts.expired += dead.length;
        this.counts.batches++;
      }
      if (code === 1) continue; // an unfinished batch was stored again: now the queue
      const w = Number(wait);
      if (w < 0) continue; // drained by this batch: one more call frees the lease
      if (w > 0 && shard < plan.shards && plan.shards > 1) {
        // Own share spent while messages wait: borrow what idle shards of the app do not use.
        prepaid = await this.borrow(app, shard, plan.limits, lenders, Math.min(this.maxBatch, Number(qlen)));
        if (prepaid > 0) continue;
      }
      await this.sleep(Math.min(Math.max(w, this.minTickMs), BORROW_TICK_MS, this.leaseMs / 2));
    }
  }

  /** Asks up to three idle shards for cells (a shard with its own queue is skipped for a while). */
  private async borrow(
    app: string,
    shard: number,
    limits: { intervalMs: number; burst: number }[],
    lenders: Lenders,
    want: number,
  ): Promise<number> {
    let got = 0;
    let asked = 0;
    const now = Date.now();
    for (let tried = 0; tried < limits.length - 1 && asked < 3 && got < want; tried++) {
      const t = lenders.next % limits.length;
      lenders.next = t + 1;
      if (t === shard || (lenders.busyUntil.get(t) ?? 0) > now) continue;
      asked++;
      const lim = limits[t]!;
      const [tat, queue] = this.o.keys.appLimitShard(app, t);
      const lendBurst = Math.max(
        1,
        Math.min(lim.burst, Math.max(2, Math.floor((4 * BORROW_TICK_MS) / lim.intervalMs))),
      );
      const [k, busy] = await this.o.redis.pgLimitLend(tat, queue, lim.intervalMs, lendBurst, want - got);
      got += Number(k);
      if (Number(busy) > 0) lenders.busyUntil.set(t, now + BUSY_LENDER_SKIP_MS);
    }
    this.counts.borrowed += got;
    return got;
  }
}

/** How often a shard with a queue and no own budget looks for idle shards to borrow from. */
const BORROW_TICK_MS = 50;
/** How long a shard that had its own queue is not asked again. */
const BUSY_LENDER_SKIP_MS = 500;

interface Lenders {
  next: number;
  busyUntil: Map<number, number>;
}
