import type { Logger } from '../logger.js';
import type { StoredMessage } from '../protocol/server-frames.js';
import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';
import { countMessage } from '../redis/messages.js';
import { storedMessageId } from '../protocol/server-frames.js';
import { admitToAppLimit, type AdmitResult, type DeferredEntry } from './app-limit.js';
import { AppLimitConfigs, AppLimitReleaser } from './releaser.js';

/** What the limiter reports, for the program's metrics (the gateway's, a dispatcher's). */
export interface AppLimitObserver {
  deferred(app: string, n: number): void;
  released(app: string, n: number): void;
  expired(app: string, n: number): void;
  refused(app: string): void;
}

export const silentAppLimitObserver: AppLimitObserver = {
  deferred: () => {},
  released: () => {},
  expired: () => {},
  refused: () => {},
};

/**
 * The per-app rate limits of RateLimitPolicies, as one sender process uses them: the published
 * limits (AppLimitConfigs), admission at accept time (admit), and this process's share of
 * releasing deferred messages (AppLimitReleaser), which stores them through `deliver`, the
 * same store-then-route step an accepted message takes.
 */
export class AppRateLimiter {
  readonly configs: AppLimitConfigs;
  readonly releaser: AppLimitReleaser;

  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    deliver: (app: string, devices: string[], message: StoredMessage, body: string) => Promise<void>,
    private readonly observer: AppLimitObserver,
    log: Logger,
    opts: { owner?: string; refreshMs?: number; leaseMs?: number; scanIntervalMs?: number } = {},
  ) {
    this.configs = new AppLimitConfigs(redis, keys, log, opts.refreshMs);
    this.releaser = new AppLimitReleaser({
      redis,
      keys,
      configs: this.configs,
      owner: opts.owner,
      leaseMs: opts.leaseMs,
      scanIntervalMs: opts.scanIntervalMs,
      log,
      store: async (app, entries) => {
        // Group by message (a fan-out's devices of one shard go in one store), keeping the
        // batch's order: stores started in one turn keep acceptance order per device.
        const byId = new Map<string, { body: string; devices: string[] }>();
        for (const e of entries) {
          const id = storedMessageId(e.body);
          let g = byId.get(id);
          if (!g) byId.set(id, (g = { body: e.body, devices: [] }));
          g.devices.push(e.device);
        }
        await Promise.all(
          [...byId.values()].map((g) => deliver(app, g.devices, JSON.parse(g.body) as StoredMessage, g.body)),
        );
        await Promise.all(
          [...byId.entries()].map(([id, g]) => countMessage(redis, keys, id, 'released', g.devices.length)),
        );
        observer.released(app, entries.length);
      },
      expired: async (app, entries) => {
        await Promise.all(
          entries.map((e) => countMessage(redis, keys, storedMessageId(e.body), 'expired', 1)),
        );
        observer.expired(app, entries.length);
      },
    });
  }

  async start(): Promise<void> {
    await this.configs.start();
    this.releaser.start();
  }

  async stop(): Promise<void> {
    this.configs.stop();
    await this.releaser.stop();
  }

  /**
   * Admits a message for `devices` under the app's published limit; undefined when the app has
   * none (everything goes now). Throws DeferredQueueFullError when the app's queue is full.
   */
  async admit(
    app: string,
    devices: string[],
    message: { exp: number },
    body: string,
  ): Promise<AdmitResult | undefined> {
    const cfg = this.configs.get(app);
    if (!cfg) return undefined;
    let r: AdmitResult;
    try {
      r = await admitToAppLimit(this.redis, this.keys, app, cfg, devices, { exp: message.exp, body });
    } catch (err) {
      this.observer.refused(app);
      throw err;
    }
    if (r.deferred) {
      this.observer.deferred(app, r.deferred);
      for (const s of r.deferredShards) this.releaser.poke(app, s);
    }
    return r;
  }
}

export type { DeferredEntry };
