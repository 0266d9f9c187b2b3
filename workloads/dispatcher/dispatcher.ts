import { setTimeout as sleep } from 'node:timers/promises';
import {
  campaignMessageId,
  campaignPlanSchema,
  readCampaignProgress,
  type CampaignPlan,
  type CampaignProgress,
} from '../../common/campaign/plan.js';
import { quietAt, validateQuietHours } from '../../common/campaign/quiet-hours.js';
import type { Logger } from '../../common/logger.js';
import { encodeStoredMessage, type StoredMessage } from '../../common/protocol/server-frames.js';
import type { PushAcceptor } from '../../common/push/accept.js';
import { parseTarget, resolveTargetByBucket, type PushTarget } from '../../common/push/target.js';
import { DeferredQueueFullError } from '../../common/ratelimit/app-limit.js';
import { takeRate } from '../../common/ratelimit/gcra.js';
import type { PgRedis } from '../../common/redis/connection.js';
import type { RedisKeys } from '../../common/redis/keys.js';
import { completeMessageStatus, createMessageStatus } from '../../common/redis/messages.js';
import type { DispatcherMetrics } from './metrics.js';
import { CampaignUnits, UNITS, unitOfBucket, type BatchCounts } from './units.js';

/** The time schedule decisions use (startAt, deadline, quiet hours); tests inject their own. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export interface DispatcherOptions {
  /** This replica's name in leases (unique per process). */
  owner: string;
  /** A unit's lease: how long a dead replica's units wait before another replica takes them. */
  leaseMs: number;
  /** How often plans are read (suspend and cancel take effect within about this, plus one batch). */
  pollMs: number;
  /** Work units this replica works at once (over all campaigns). */
  concurrency: number;
  /** A batch is this many ms of the campaign's rate (sub-second pacing: no minute bursts). */
  batchMs: number;
  /** How often the keys of campaigns gone from the index are removed. */
  gcIntervalMs: number;
}

export const DEFAULT_DISPATCHER_OPTIONS: Omit<DispatcherOptions, 'owner'> = {
  leaseMs: 5000,
  pollMs: 250,
  concurrency: 8,
  batchMs: 50,
  gcIntervalMs: 10_000,
};

/** Largest page one worker sends at once (a high rate is more workers and pages, not huge ones). */
const MAX_PAGE = 1000;
/** Attempts at one batch (Redis errors) before its devices are counted failed. */
const MAX_BATCH_ATTEMPTS = 5;
const ZERO: BatchCounts = { sent: 0, deferred: 0, expired: 0, failed: 0 };

/** The audience of a plan as one target expression, parsed once by the push path's own parser. */
export function planTarget(plan: CampaignPlan): PushTarget | undefined {
  if (plan.target.allDevices) return parseTarget({ all: true });
  const { allOf, anyOf, noneOf } = plan.target;
  const parts = [...allOf];
  if (anyOf.length) parts.push(anyOf.length === 1 ? anyOf[0]! : `(${anyOf.join(' || ')})`);
  for (const t of noneOf) parts.push(`!${t}`);
  // Only noneOf: everyone of the app but those.
  if (!allOf.length && !anyOf.length && !noneOf.length) return undefined;
  return parseTarget({ tag: parts.join(' && ') });
}

/** The one stored message of a campaign: the same body (and id) for every device and replay. */
export function campaignMessage(plan: CampaignPlan, snapshotAt: number): StoredMessage {
  return {
    id: campaignMessageId(plan.id),
    exp: snapshotAt + plan.push.ttlSeconds * 1000,
    ttl: plan.push.ttlSeconds,
    priority: plan.push.priority,
    collapse: plan.push.collapseKey,
    sent: snapshotAt,
    data: plan.push.data,
  };
}

interface Worker {
  unit: number;
  stop: boolean;
  done: Promise<void>;
}

/** What this replica holds for one campaign. */
interface Run {
  plan: CampaignPlan;
  units: CampaignUnits;
  workers: Map<number, Worker>;
  progress: CampaignProgress | undefined;
  snapshotAt: number | undefined;
  message: StoredMessage | undefined;
  body: string | undefined;
  snapshotting: boolean;
  /** Sending waits for the app's limit until then (ms, local clock). */
  appLimitUntil: number;
  /** When a page last met a device's daily cap (ms): throttled DeviceCap for a few seconds. */
  deviceCapAt: number;
  throttled: CampaignProgress['throttled'] | '';
  statusAt: number;
  /** The audience lists were removed after the campaign finished. */
  trimmed: boolean;
}

/**
 * One dispatcher replica: reads the published plans, snapshots audiences, claims work units and
 * sends each page through the push path's acceptance (PushAcceptor.acceptPage), paced by the
 * campaign's shared GCRA. See README.md for the lifecycle, and units.ts for the fencing.
 */
export class Dispatcher {
  private readonly runs = new Map<string, Run>();
  private readonly loggedInvalid = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private lastGc = 0;
  private workerSeq = 0;
  /** Campaigns with dispatcher keys found missing from the index, since when (ms). */
  private readonly missingSince = new Map<string, number>();
  private readonly opts: DispatcherOptions;

  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    private readonly acceptor: Pick<PushAcceptor, 'acceptPage'>,
    private readonly metrics: DispatcherMetrics,
    private readonly clock: Clock,
    opts: Partial<DispatcherOptions> & { owner: string },
    private readonly log: Logger,
    /** Called once per pass before anything else (the process's test clock rereads its offset). */
    private readonly beforeTick: () => Promise<void> = async () => {},
  ) {
    this.opts = { ...DEFAULT_DISPATCHER_OPTIONS, ...opts };
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.ticking = this.tick()
        .catch((err: unknown) => this.log.error({ err }, 'dispatcher pass failed'))
        .finally(() => {
          this.lastPassAt = Date.now(); // a pass ended, failed or not: the loop is alive
          if (!this.stopped) this.timer = setTimeout(loop, this.opts.pollMs);
        });
    };
    loop();
  }

  /** Stops claiming, lets every worker finish its batch and give its lease back. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    const all: Promise<void>[] = [];
    for (const run of this.runs.values())
      for (const w of run.workers.values()) {
        w.stop = true;
        all.push(w.done);
      }
    await Promise.all(all);
  }

  /** When the last pass over the plans ended, failed or not (ms): liveness. */
  lastPassAt = Date.now();

  get activeUnits(): number {
    let n = 0;
    for (const r of this.runs.values()) n += r.workers.size;
    return n;
  }

  /** One pass over every published campaign. */
  async tick(): Promise<void> {
    await this.beforeTick();
    const plans = await this.readPlans();
    const seen = new Set(plans.map((p) => p.id));
    for (const [id, run] of this.runs)
      if (!seen.has(id)) {
        // Deleted (the controller removed plan and index entry): stop at once.
        this.stopWorkers(run);
        if (run.workers.size === 0) this.runs.delete(id);
      }
    const sending: Run[] = [];
    for (const plan of plans) {
      try {
        const run = await this.step(plan);
        if (run) sending.push(run);
      } catch (err) {
        this.log.warn({ err, campaign: plan.id, name: plan.name }, 'campaign pass failed');
      }
    }
    // Campaigns that may send share this replica's units: a slow campaign with big units must
    // not hold every slot while another waits. Each gets an equal share (at least one); a
    // campaign above its share gives the extra units back (their cursors stay).
    const share = Math.max(1, Math.floor(this.opts.concurrency / Math.max(1, sending.length)));
    for (const run of sending) {
      try {
        const working = [...run.workers.values()].filter((w) => !w.stop);
        for (const w of working.slice(share)) w.stop = true;
        await this.claimUnits(run, share);
        await this.writeStatus(run);
      } catch (err) {
        this.log.warn({ err, campaign: run.plan.id, name: run.plan.name }, 'campaign pass failed');
      }
    }
    this.metrics.activeUnits.set(this.activeUnits);
    if (Date.now() - this.lastGc >= this.opts.gcIntervalMs) {
      this.lastGc = Date.now();
      await this.collectGarbage(seen).catch((err: unknown) => this.log.warn({ err }, 'campaign gc failed'));
    }
  }

  private async readPlans(): Promise<CampaignPlan[]> {
    const ids = await this.redis.smembers(this.keys.campaignIndex());
    if (ids.length === 0) return [];
    const raws = await Promise.all(ids.map((id) => this.redis.get(this.keys.campaignPlan(id))));
    const plans: CampaignPlan[] = [];
    ids.forEach((id, i) => {
      const raw = raws[i];
      if (raw === null || raw === undefined) return; // being published or removed
      let problem: string | undefined;
      let plan: CampaignPlan | undefined;
      try {
        const parsed = campaignPlanSchema.safeParse(JSON.parse(raw));
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          problem = `${issue?.path.join('.') || '(plan)'}: ${issue?.message ?? 'invalid'}`;
        } else if (parsed.data.id !== id) problem = `id: '${parsed.data.id}' under index entry '${id}'`;
        else {
          plan = parsed.data;
          if (plan.quietHours) validateQuietHours(plan.quietHours);
          planTarget(plan);
        }
      } catch (err) {
        problem = err instanceof SyntaxError ? 'not JSON' : (err as Error).message;
        plan = undefined;
      }
      if (plan) {
        this.loggedInvalid.delete(id);
        plans.push(plan);
        return;
      }
      this.metrics.invalidPlans.inc();
      // Logged once per plan text (the next pass would say the same).
      if (this.loggedInvalid.get(id) !== raw) {
        this.loggedInvalid.set(id, raw);
        this.log.warn({ campaign: id, problem }, 'invalid campaign plan skipped');
      }
    });
    return plans;
  }

  private runOf(plan: CampaignPlan): Run {
    let run = this.runs.get(plan.id);
    if (!run) {
      run = {
        plan,
        units: new CampaignUnits(this.redis, this.keys, plan.id, this.opts.owner, this.opts.leaseMs),
        workers: new Map(),
        progress: undefined,
        snapshotAt: undefined,
        message: undefined,
        body: undefined,
        snapshotting: false,
        appLimitUntil: 0,
        deviceCapAt: 0,
        throttled: '',
        statusAt: 0,
        trimmed: false,
      };
      this.runs.set(plan.id, run);
    }
    if (run.plan.generation !== plan.generation || run.plan.state !== plan.state)
      this.log.info(
        { campaign: plan.id, name: plan.name, generation: plan.generation, state: plan.state },
        'campaign plan changed',
      );
    run.plan = plan;
    return run;
  }

  private stopWorkers(run: Run): void {
    for (const w of run.workers.values()) w.stop = true;
  }

  /** One campaign's pass; returns its run when it may send now (units are claimed after every step). */
  private async step(plan: CampaignPlan): Promise<Run | undefined> {
    const run = this.runOf(plan);
    const progress = await this.readProgress(plan.id);
    run.progress = progress;
    const now = this.clock.now();

    if (progress.finishedAt !== undefined || progress.error) {
      this.stopWorkers(run);
      if (progress.finishedAt !== undefined && !run.trimmed && run.workers.size === 0) await this.trim(run);
      return;
    }
    if (plan.state === 'cancel') {
      this.stopWorkers(run);
      if (run.workers.size === 0 && (await run.units.finish('stop'))) {
        this.log.info({ campaign: plan.id, name: plan.name }, 'campaign cancelled; counts final');
      }
      return;
    }
    const pastDeadline = plan.deadline !== undefined && now >= plan.deadline;
    // Past its deadline a suspended campaign is finished too: what is left is counted expired
    // (the workers expire units without sending).
    if (plan.state === 'suspend' && !pastDeadline) {
      this.stopWorkers(run);
      await this.writeThrottled(run, '');
      return;
    }
    if (now < plan.startAt && !pastDeadline) return;
    const quiet = plan.quietHours && !pastDeadline ? quietAt(now, plan.quietHours) : undefined;
    if (quiet?.quiet) {
      this.stopWorkers(run);
      await this.writeThrottled(run, 'QuietHours');
      return;
    }
    if (progress.snapshotAt === undefined) {
      if (!run.snapshotting) {
        run.snapshotting = true;
        // Not awaited: a big audience takes a while; the loop keeps serving other campaigns.
        void this.snapshot(run)
          .catch((err: unknown) => {
            this.metrics.snapshots.inc({ result: 'error' });
            this.log.warn({ err, campaign: plan.id }, 'audience snapshot failed; retrying');
          })
          .finally(() => (run.snapshotting = false));
      }
      return;
    }
    if (plan.dryRun) {
      if (await run.units.finish('stop'))
        this.log.info({ campaign: plan.id, targeted: progress.counters.targeted }, 'dry run counted');
      return;
    }
    await this.prepareMessage(run, progress.snapshotAt);
    return run;
  }

  private readProgress(id: string): Promise<CampaignProgress> {
    return readCampaignProgress(this.redis, this.keys, id);
  }

  /**
   * Takes the audience once: resolves the plan's target from the indexes (the push path's own
   * resolver) and writes each unit's devices as a list. Later tag changes do not move it.
   */
  private async snapshot(run: Run): Promise<void> {
    const { plan, units } = run;
    const lock = this.keys.campaignSnapshotLock(plan.id);
    const got = await this.redis.set(lock, this.opts.owner, 'PX', 300_000, 'NX');
    if (got !== 'OK') return; // another replica is taking it
    try {
      await this.redis.sadd(this.keys.campaignDispatched(), plan.id);
      // A campaign that already sent (units were claimed, or its message status exists) but has
      // no snapshot in its progress lost state in Redis: sending again from zero would resend
      // to everyone. Stop and say so instead.
      const mid = campaignMessageId(plan.id);
      if ((await units.everClaimed()) || (await this.redis.exists(this.keys.messageStatus(mid))) === 1) {
        await this.stateLost(
          run,
          'progress lost after sending began (no snapshot recorded, but units or the message exist)',
        );
        return;
      }
      const started = Date.now();
      const target = planTarget(plan);
      // Per device bucket, as the tag index holds it: each bucket's devices go to its unit.
      const buckets = target
        ? await resolveTargetByBucket(this.redis, this.keys, plan.app, target, Number.POSITIVE_INFINITY)
        : [];
      const byUnit: string[][] = Array.from({ length: UNITS }, () => []);
      for (const [b, ds] of buckets.entries()) for (const d of ds) byUnit[unitOfBucket(b)]!.push(d);
      const targeted = byUnit.reduce((n, u) => n + u.length, 0);
      for (let u = 0; u < UNITS; u++) {
        const list = this.keys.campaignAudience(plan.id, u);
        const p = this.redis.pipeline();
        p.del(list);
        const ds = byUnit[u]!;
        for (let i = 0; i < ds.length; i += 5000) p.rpush(list, ...ds.slice(i, i + 5000));
        await p.exec();
      }
      const snapshotAt = Date.now();
      const recorded = await units.recordSnapshot(
        targeted,
        snapshotAt,
        byUnit.map((d) => d.length),
      );
      this.metrics.snapshots.inc({ result: recorded ? 'ok' : 'raced' });
      this.log.info(
        { campaign: plan.id, name: plan.name, targeted: targeted, ms: snapshotAt - started, recorded },
        'audience snapshot taken',
      );
    } finally {
      const v = await this.redis.get(lock);
      if (v === this.opts.owner) await this.redis.del(lock);
    }
  }

  private async stateLost(run: Run, reason: string): Promise<void> {
    this.stopWorkers(run);
    this.metrics.stateLost.inc();
    await this.redis.hset(this.keys.campaignProgress(run.plan.id), 'error', `state lost: ${reason}`);
    this.log.error(
      { campaign: run.plan.id, name: run.plan.name, reason },
      'campaign state lost in Redis; stopped rather than sending again from zero',
    );
  }

  private async prepareMessage(run: Run, snapshotAt: number): Promise<void> {
    if (run.message && run.snapshotAt === snapshotAt) return;
    const message = campaignMessage(run.plan, snapshotAt);
    // The message's status: the push API's per-message record (gateways count frames and acks
    // on it too), and the witness that this campaign began sending.
    await createMessageStatus(this.redis, this.keys, {
      id: message.id,
      app: run.plan.app,
      target: JSON.stringify({ campaign: run.plan.name }),
      createdAt: snapshotAt,
      expiresAt: message.exp,
    });
    await completeMessageStatus(this.redis, this.keys, message.id, {
      recipients: run.progress?.counters.targeted ?? 0,
    });
    run.message = message;
    run.body = encodeStoredMessage(message);
    run.snapshotAt = snapshotAt;
  }

  private async claimUnits(run: Run, share: number): Promise<void> {
    const busy = () => [...run.workers.values()].filter((w) => !w.stop).length;
    while (!this.stopped && busy() < share && (this.activeUnits < this.opts.concurrency || busy() === 0)) {
      const claim = await run.units.claim();
      if ('code' in claim) {
        if (claim.code === 'done' && run.workers.size === 0 && (await run.units.finish('done'))) {
          await run.units.setProgress({ ratePerSecond: '0', throttled: '' });
          const p = await this.readProgress(run.plan.id);
          this.log.info({ campaign: run.plan.id, name: run.plan.name, ...p.counters }, 'campaign finished');
        }
        if (claim.code === 'state-lost')
          await this.stateLost(run, 'cursors lost (progress has a snapshot, the work units are gone)');
        return;
      }
      this.metrics.claims.inc();
      const w: Worker = { unit: claim.unit, stop: false, done: Promise.resolve() };
      const key = ++this.workerSeq;
      run.workers.set(key, w);
      // A worker that finishes a unit claims the next one at once (not at the next pass: small
      // units would otherwise cost a pass each).
      w.done = (async () => {
        let c = claim;
        while (await this.work(run, w, c)) {
          if (w.stop || this.stopped) return;
          const next = await run.units.claim();
          if ('code' in next) return;
          this.metrics.claims.inc();
          w.unit = next.unit;
          c = next;
        }
      })()
        .catch((err: unknown) => this.log.warn({ err, campaign: run.plan.id, unit: w.unit }, 'unit failed'))
        .finally(() => run.workers.delete(key));
    }
  }

  /** When what is left of the campaign counts as expired (deadline, or the message's TTL). */
  private expiresAt(run: Run): { at: number; now: number } | undefined {
    const { plan } = run;
    if (plan.deadline !== undefined) return { at: plan.deadline, now: this.clock.now() };
    // TTL runs from the campaign's start (the message's `sent`); TTL 0 is "now or never" per device.
    if (plan.push.ttlSeconds > 0 && run.message) return { at: run.message.exp, now: Date.now() };
    return undefined;
  }

  private async work(
    run: Run,
    w: Worker,
    claim: { unit: number; epoch: number; cursor: number; len: number },
  ): Promise<boolean> {
    const { units } = run;
    const { unit, epoch, len } = claim;
    let cursor = claim.cursor;
    let lastAdvance = Date.now();
    let attempts = 0;
    const audience = this.keys.campaignAudience(run.plan.id, unit);
    const renew = async () => {
      if (Date.now() - lastAdvance < this.opts.leaseMs / 3) return true;
      const ok = await units.advance(unit, epoch, cursor, cursor, ZERO, false);
      lastAdvance = Date.now();
      return ok;
    };
    for (;;) {
      if (w.stop || this.stopped) {
        await units.release(unit, epoch);
        return false;
      }
      const exp = this.expiresAt(run);
      if (cursor >= len || (exp && exp.now >= exp.at)) {
        const expired = len - cursor;
        if (await units.advance(unit, epoch, cursor, len, { ...ZERO, expired }, true)) {
          if (expired) this.metrics.sent.inc({ outcome: 'expired' }, expired);
          return true;
        }
        return this.fenced(run, unit);
      }
      if (run.appLimitUntil > Date.now()) {
        await sleep(Math.min(200, run.appLimitUntil - Date.now()));
        if (!(await renew())) return this.fenced(run, unit);
        continue;
      }
      const { perSecond, burst } = run.plan.rate;
      // At most half the burst: the other half is slack that lets a late request (timer and
      // event-loop lag) catch up, so the rate holds instead of losing each request's lateness.
      const n = Math.min(
        len - cursor,
        Math.max(
          1,
          Math.min(MAX_PAGE, Math.floor(burst / 2), Math.round((perSecond * this.opts.batchMs) / 1000)),
        ),
      );
      const decision = await takeRate(
        this.redis,
        this.keys,
        `cmp:${run.plan.id}`,
        { ratePerSecond: perSecond, burst },
        n,
      );
      if (!decision.allowed) {
        await sleep(Math.max(1, Math.min(decision.retryAfterMs, 250)));
        if (!(await renew())) return this.fenced(run, unit);
        continue;
      }
      const grantedAt = Date.now();
      const devices = await this.redis.lrange(audience, cursor, cursor + n - 1);
      let counts: BatchCounts;
      try {
        const r = await this.acceptor.acceptPage(run.plan.app, devices, run.message!, run.body);
        attempts = 0;
        // sent: in the inbox now, or queued by the app's limit or a device's daily cap (stored
        // when it releases); expired: TTL 0 and not connected at send time (now or never);
        // failed: refused by a device's daily cap (its day's allowance is used up).
        counts = {
          sent: r.stored + r.duplicate + r.deferred,
          deferred: r.deferred,
          expired: r.dropped,
          failed: r.capRefused,
        };
        if (r.capped || r.capRefused) run.deviceCapAt = Date.now();
        if (r.capRefused) this.metrics.sent.inc({ outcome: 'cap_refused' }, r.capRefused);
        if (r.deferred > r.capped) {
          run.appLimitUntil = Math.max(run.appLimitUntil, Math.min(r.releaseAt, Date.now() + 5000));
          run.throttled = 'AppLimit';
        } else if (run.appLimitUntil < Date.now()) run.throttled = '';
        this.metrics.sent.inc({ outcome: 'stored' }, r.stored);
        if (r.duplicate) this.metrics.sent.inc({ outcome: 'duplicate' }, r.duplicate);
        if (r.deferred) this.metrics.sent.inc({ outcome: 'deferred' }, r.deferred);
        if (r.dropped) this.metrics.sent.inc({ outcome: 'expired' }, r.dropped);
      } catch (err) {
        if (err instanceof DeferredQueueFullError) {
          // Nothing was queued or stored: wait for the app's queue and send the page again.
          run.appLimitUntil = Date.now() + Math.max(100, Math.min(err.retryAfterMs, 5000));
          run.throttled = 'AppLimit';
          if (!(await renew())) return this.fenced(run, unit);
          continue;
        }
        this.metrics.batches.inc({ result: 'error' });
        if (++attempts < MAX_BATCH_ATTEMPTS) {
          this.log.warn({ err, campaign: run.plan.id, unit, cursor, attempts }, 'batch failed; retrying');
          await sleep(200 * attempts);
          if (!(await renew())) return this.fenced(run, unit);
          continue;
        }
        this.log.error(
          { err, campaign: run.plan.id, unit, cursor, n },
          'batch failed; its devices counted failed',
        );
        counts = { ...ZERO, failed: n };
        this.metrics.sent.inc({ outcome: 'failed' }, n);
        attempts = 0;
      }
      const to = cursor + n;
      if (!(await units.advance(unit, epoch, cursor, to, counts, to >= len, grantedAt)))
        return this.fenced(run, unit);
      this.metrics.batches.inc({ result: 'ok' });
      cursor = to;
      lastAdvance = Date.now();
      if (to >= len) return true;
    }
  }

  private fenced(run: Run, unit: number): false {
    this.metrics.batches.inc({ result: 'fenced' });
    this.log.warn(
      { campaign: run.plan.id, unit },
      'lost the lease of a unit (frozen or slow past it); another replica continues from its cursor',
    );
    return false;
  }

  private async writeThrottled(run: Run, reason: Run['throttled']): Promise<void> {
    if (run.throttled === reason && Date.now() - run.statusAt < 1000) return;
    run.throttled = reason;
    run.statusAt = Date.now();
    await run.units.setProgress({ throttled: reason ?? '' });
  }

  /** About once a second: the measured rate (last 5 full seconds) and why it is throttled. */
  private async writeStatus(run: Run): Promise<void> {
    if (Date.now() - run.statusAt < 1000 || run.workers.size === 0) return;
    run.statusAt = Date.now();
    const rateKey = this.keys.campaignRate(run.plan.id);
    const h = await this.redis.hgetall(rateKey);
    const sec = Math.floor(Date.now() / 1000);
    let sum = 0;
    for (let s = sec - 5; s < sec; s++) sum += Number(h[String(s)] ?? 0);
    const old = Object.keys(h).filter((s) => Number(s) < sec - 600);
    const throttled =
      run.appLimitUntil > Date.now() ? 'AppLimit' : Date.now() - run.deviceCapAt < 5000 ? 'DeviceCap' : '';
    await run.units.setProgress({ ratePerSecond: String(sum / 5), throttled });
    if (old.length) await this.redis.hdel(rateKey, ...old);
  }

  /** A finished campaign's audience lists are not needed any more (counts and cursors stay). */
  private async trim(run: Run): Promise<void> {
    run.trimmed = true;
    await this.del([
      ...Array.from({ length: UNITS }, (_, u) => this.keys.campaignAudience(run.plan.id, u)),
      this.keys.rateLimit(`cmp:${run.plan.id}`),
    ]);
  }

  /** Deletes keys of many slots: one command each (sent together; a Cluster pipeline must stay on one node). */
  private async del(keys: string[]): Promise<void> {
    await Promise.all(keys.map((k) => this.redis.del(k)));
  }

  /**
   * Removes every key the dispatchers made for campaigns no longer in the index (the controller
   * removed plan, progress and index entry when the TagCampaign was deleted).
   */
  private async collectGarbage(indexed: Set<string>): Promise<void> {
    const ids = await this.redis.smembers(this.keys.campaignDispatched());
    const now = Date.now();
    for (const [id] of this.missingSince) if (!ids.includes(id)) this.missingSince.delete(id);
    for (const id of ids) {
      if (indexed.has(id)) {
        this.missingSince.delete(id);
        continue;
      }
      // Read the index again: a campaign published since this pass began is not garbage.
      if ((await this.redis.sismember(this.keys.campaignIndex(), id)) === 1) continue;
      // Gone for a lease and a second: every replica has stopped its batches by then (or lost
      // its leases), so nothing writes the keys again after they are removed.
      const since = this.missingSince.get(id) ?? now;
      this.missingSince.set(id, since);
      if (now - since < this.opts.leaseMs + 1000 || this.runs.get(id)?.workers.size) continue;
      this.missingSince.delete(id);
      await this.del([
        ...Array.from({ length: UNITS }, (_, u) => this.keys.campaignAudience(id, u)),
        this.keys.campaignUnits(id),
        this.keys.campaignRate(id),
        this.keys.campaignSnapshotLock(id),
        this.keys.rateLimit(`cmp:${id}`),
      ]);
      await this.redis.srem(this.keys.campaignDispatched(), id);
      this.runs.delete(id);
      this.metrics.gcCampaigns.inc();
      this.log.info({ campaign: id }, 'campaign gone from the index; its dispatcher keys removed');
    }
  }
}
