import type { Logger } from '../logger.js';
import type { StoredMessage } from '../protocol/server-frames.js';
import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';
import { countMessage } from '../redis/messages.js';
import { bodyRefId, encodeBodyRefWithId, storedMessageId } from '../protocol/server-frames.js';
import { bodyCacheOf, STORE_ONCE_RECIPIENTS, writeSharedBody } from '../redis/bodies.js';
import { admitToAppLimit, type AdmitResult, type DeferredEntry } from './app-limit.js';
import { AppLimitConfigs, AppLimitReleaser } from './releaser.js';
import { admitDeviceCap, DeviceCapFullError, DeviceCapReleaser, nextUtcDay } from './device-cap.js';
import { AdaptiveThrottle, type AdaptiveObserver } from './adaptive.js';

/** What the limiter reports, for the program's metrics (the gateway's, a dispatcher's). */
export interface AppLimitObserver {
  deferred(app: string, n: number): void;
  released(app: string, n: number): void;
  expired(app: string, n: number): void;
  refused(app: string): void;
  /** Recipients held by their device's daily cap for the next UTC day (reason DeviceCap). */
  capped?(app: string, n: number): void;
  /** Recipients refused by their device's daily cap (the device already holds a day's allowance). */
  capRefused?(app: string, n: number): void;
  /** An adaptive throttling step of an app (factor of the configured rate, reason). */
  adaptive?(app: string, factor: number, reason: string, changed: boolean): void;
}

/** What admission decided for one push under the app's policy. */
export interface LimitResult extends AdmitResult {
  /** Recipients held by the daily cap for the next UTC day. */
  capped: number;
  /** Recipients refused by the daily cap (each device already holds a whole day's allowance). */
  capRefused: number;
  /** When the recipients held by the daily cap go out (the next UTC day's start), 0 = none held. `releaseAt` is the rate limit's alone. */
  capReleaseAt: number;
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
  /** Releases what the per-device daily caps held, when its day comes. */
  readonly capReleaser: DeviceCapReleaser;
  /** Downstream outcomes and the AIMD steps of adaptive throttling (measure() wraps every store). */
  readonly adaptive: AdaptiveThrottle;
  private readonly now: () => number;

  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    deliver: (app: string, devices: string[], message: StoredMessage, body: string) => Promise<void>,
    private readonly observer: AppLimitObserver,
    log: Logger,
    opts: {
      owner?: string;
      refreshMs?: number;
      leaseMs?: number;
      scanIntervalMs?: number;
      /** The clock of the daily caps (tests inject one to cross midnight UTC). */
      now?: () => number;
      /** A store slower than this is a downstream timeout for adaptive throttling (ms). */
      downstreamTimeoutMs?: number;
      /** A push written to a device and not acked within this is a downstream timeout (ms). */
      ackTimeoutMs?: number;
      /** The apps this process serves (a policy without appIds covers each of them without a policy of its own). */
      knownApps?: () => Iterable<string>;
    } = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.configs = new AppLimitConfigs(redis, keys, log, opts.refreshMs, opts.knownApps);
    const adaptiveObserver: AdaptiveObserver = {
      step: (app, factor, reason, changed) => observer.adaptive?.(app, factor, reason, changed),
    };
    this.adaptive = new AdaptiveThrottle(redis, keys, this.configs, log, adaptiveObserver, {
      timeoutMs: opts.downstreamTimeoutMs,
      ackTimeoutMs: opts.ackTimeoutMs,
    });
    const measuredDeliver = async (app: string, devices: string[], message: StoredMessage, body: string) => {
      // A large fan-out's queue entries refer to its body stored once (admit): resolve it first.
      const ref = bodyRefId(body);
      if (ref !== undefined) {
        const full = (await bodyCacheOf(redis).resolve(redis, keys, [ref])).get(ref);
        if (full == null) {
          // The body is gone from Redis (evicted or lost): these recipients cannot get it.
          log.warn(
            { app, id: ref, devices: devices.length },
            'deferred message dropped: its shared body is gone',
          );
          await countMessage(redis, keys, ref, 'expired', devices.length);
          observer.expired(app, devices.length);
          return;
        }
        body = full;
        message = JSON.parse(full) as StoredMessage;
      }
      await this.adaptive.measure(app, devices.length, () => deliver(app, devices, message, body));
    };
    this.capReleaser = new DeviceCapReleaser({
      redis,
      keys,
      configs: this.configs,
      log,
      owner: opts.owner,
      now: this.now,
      scanIntervalMs: opts.scanIntervalMs,
      // Their day has come: on to the app's rate limit (already accepted, so never refused for a
      // full queue), stored now where the rate allows, queued in the shards otherwise.
      release: async (app, entries) => {
        const cfg = this.configs.get(app);
        if (!cfg) throw new Error(`app ${app} has no published limit now; held messages wait`);
        for (const g of groupByMessage(entries)) {
          const r = await admitToAppLimit(
            redis,
            keys,
            app,
            cfg,
            g.devices,
            { exp: g.exp, body: g.body },
            g.acceptedAt,
            { unbounded: true },
          );
          const now = r.now.map((i) => g.devices[i]!);
          if (now.length) {
            await measuredDeliver(app, now, JSON.parse(g.body) as StoredMessage, g.body);
            await countMessage(redis, keys, g.id, 'released', now.length);
            observer.released(app, now.length);
          }
          for (const s of r.deferredShards) this.releaser.poke(app, s);
        }
      },
      expired: async (app, entries) => {
        await Promise.all(
          entries.map((e) => countMessage(redis, keys, storedMessageId(e.body), 'expired', 1)),
        );
        observer.expired(app, entries.length);
      },
    });
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
          [...byId.values()].map((g) =>
            measuredDeliver(app, g.devices, JSON.parse(g.body) as StoredMessage, g.body),
          ),
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
    this.capReleaser.start();
    this.adaptive.start();
  }

  async stop(): Promise<void> {
    this.configs.stop();
    await Promise.all([this.releaser.stop(), this.capReleaser.stop(), this.adaptive.stop()]);
  }

  /**
   * Admits a message for `devices` under the app's published policy; undefined when the app has
   * none (everything goes now). First each recipient's daily cap (perDevice): over it, held for
   * the next UTC day; then the app's rate for the rest: over it, deferred. Throws
   * DeferredQueueFullError when the app's queue is full (and takes back what the cap counted),
   * DeviceCapFullError when the cap refused every recipient.
   */
  async admit(
    app: string,
    devices: string[],
    message: { exp: number; priority?: 'high' | 'normal' },
    body: string,
  ): Promise<LimitResult | undefined> {
    const cfg = this.configs.get(app);
    if (!cfg) return undefined;
    if (devices.length >= STORE_ONCE_RECIPIENTS) {
      // What a large fan-out queues refers to its body, stored once (common/redis/bodies.ts).
      const id = storedMessageId(body);
      await writeSharedBody(this.redis, this.keys, { id, exp: message.exp }, body);
      body = encodeBodyRefWithId({ id, exp: message.exp });
    }
    const acceptedAt = this.now();
    let cap: Awaited<ReturnType<typeof admitDeviceCap>> | undefined;
    let go = devices.map((_, i) => i);
    if (cfg.perDevice) {
      cap = await admitDeviceCap(
        this.redis,
        this.keys,
        app,
        cfg.perDevice,
        devices,
        { exp: message.exp, body, priority: message.priority ?? 'normal' },
        acceptedAt,
      );
      if (devices.length && cap.refused === devices.length) {
        this.observer.capRefused?.(app, cap.refused);
        throw new DeviceCapFullError(
          app,
          cfg.perDevice.messagesPerDay,
          nextUtcDay(acceptedAt) - acceptedAt,
          cfg.policy,
        );
      }
      go = go.filter((i) => cap!.codes[i] === 1);
    }
    let r: AdmitResult;
    try {
      const sub = go.map((i) => devices[i]!);
      r = await admitToAppLimit(this.redis, this.keys, app, cfg, sub, { exp: message.exp, body });
      r.now = r.now.map((k) => go[k]!);
    } catch (err) {
      this.observer.refused(app);
      if (cap) await cap.undo();
      throw err;
    }
    if (r.deferred) {
      this.observer.deferred(app, r.deferred);
      for (const s of r.deferredShards) this.releaser.poke(app, s);
    }
    if (cap?.held) this.observer.capped?.(app, cap.held);
    if (cap?.refused) this.observer.capRefused?.(app, cap.refused);
    return {
      ...r,
      capped: cap?.held ?? 0,
      capRefused: cap?.refused ?? 0,
      capReleaseAt: cap?.releaseAt ?? 0,
    };
  }
}

/** A batch of released entries by message (a fan-out's devices in one call), in batch order. */
function groupByMessage(entries: DeferredEntry[]) {
  const byId = new Map<
    string,
    { id: string; body: string; exp: number; acceptedAt: number; devices: string[] }
  >();
  for (const e of entries) {
    const id = storedMessageId(e.body);
    let g = byId.get(id);
    if (!g) byId.set(id, (g = { id, body: e.body, exp: e.exp, acceptedAt: e.acceptedAt, devices: [] }));
    g.devices.push(e.device);
  }
  return [...byId.values()];
}

export type { DeferredEntry };
