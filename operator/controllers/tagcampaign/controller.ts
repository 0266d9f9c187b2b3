import {
  ApiValidationError,
  parseTagCampaign,
  type TagCampaign,
  type TagCampaignStatus,
} from '../../api/index.js';
import type { Logger } from '../../../common/logger.js';
import { removeCampaign } from '../../../common/campaign/plan.js';
import { FIELD_MANAGER } from '../../identity.js';
import { findCondition } from '../../runtime/conditions.js';
import type { Controller, SyncOutcome, SyncResult } from '../../runtime/controller.js';
import { TerminalError, terminalCause } from '../../runtime/errors.js';
import type { EventRecorder } from '../../runtime/events.js';
import { objectKey, type KubeClient, type KubeObject } from '../../runtime/kube.js';
import type { Manager } from '../../runtime/manager.js';
import { writeStatus } from '../../runtime/status.js';
import { runSteps, type Step } from '../../runtime/steps.js';
import { PushGatewayResource } from '../pushgateway/names.js';
import { RateLimitPolicyResource } from '../ratelimitpolicy/controller.js';
import { GatewayRedisError, type GatewayRedis } from '../shared/gateway-redis.js';
import { startAtOf } from './desired.js';
import { TagCampaignResource } from './resource.js';
import { computeCampaignStatus, deliveriesSettleAt, isFinal, type CampaignProblem } from './status.js';
import type { CampaignContext, CampaignEnv } from './steps/context.js';
import { sweepOrphanedCampaigns } from './orphans.js';
import { ensureFinalizer, finalizeCampaign } from './steps/finalizer.js';
import { observe, publish, resolve } from './steps/publish.js';

export { TagCampaignResource };

export interface TagCampaignControllerOptions {
  client: KubeClient;
  manager: Manager;
  recorder: EventRecorder;
  log: Logger;
  gatewayRedis: GatewayRedis;
  /** How often a live campaign's progress is read and its status written, at most. */
  pollMs?: number;
  /** After this long, an unreachable Redis no longer holds up the deletion of a campaign. */
  cleanupTimeoutMs?: number;
  /** How long a cancelled campaign waits for the dispatchers' final counts. */
  cancelGraceMs?: number;
  /** How often the leader looks for published campaigns without a TagCampaign (orphans.ts). */
  orphanSweepMs?: number;
}

const SYNC_STEPS: Step<CampaignContext>[] = [ensureFinalizer, resolve, publish, observe];
/** A final campaign: nothing to publish, only its progress to read (late reads and acks). */
const LATE_DELIVERY_STEPS: Step<CampaignContext>[] = [resolve, observe];

/**
 * TagCampaign: publishes each campaign's plan into its PushGateway's Redis for the dispatchers
 * (common/campaign/plan.ts), reads the progress they count back, and writes status (phase,
 * conditions, counters, progress, rate, ETA) from it. The sync path does every Redis read, at
 * most once per pollMs per campaign whatever triggers it (policy or gateway events included);
 * the status path computes status from what the last sync observed, deterministically, so a
 * status-only event never writes again. A final status (Completed, Failed by sending,
 * Cancelled) keeps its phase and send counts; its delivered and acked counts follow the devices
 * until the message's TTL has run out (devices offline at sending read it on reconnect), then
 * nothing is read or written again. Deletion goes through a finalizer (steps/finalizer.ts).
 */
export class TagCampaignController {
  readonly controller: Controller;
  private readonly env: CampaignEnv;
  private readonly pollMs: number;
  private readonly orphans = new Map<string, { gatewayKey: string; id: string }>();
  private orphanTimer: NodeJS.Timeout | undefined;
  private readonly sweepTimer: NodeJS.Timeout;
  private sweeping = false;
  private closed = false;

  constructor(private readonly o: TagCampaignControllerOptions) {
    this.pollMs = o.pollMs ?? 12_000;
    this.controller = o.manager.controller({
      name: 'tagcampaign',
      for: TagCampaignResource,
      watches: [
        {
          kind: PushGatewayResource,
          // A gateway appearing or going concerns the campaigns naming it.
          map: (gw) =>
            this.campaigns(gw.metadata?.namespace)
              .filter((c) => gatewayNameOf(c) === gw.metadata?.name)
              .map(objectKey),
          path: 'sync',
        },
        {
          kind: RateLimitPolicyResource,
          // A policy may cover any app of its namespace's campaigns (their rate and cap).
          map: (p) => this.campaigns(p.metadata?.namespace).map(objectKey),
          path: 'sync',
        },
      ],
      reconciler: {
        sync: (key) => this.sync(key),
        updateStatus: (key, last) => this.updateStatus(key, last),
      },
      workers: 2,
    });
    this.env = {
      client: o.client,
      recorder: o.recorder,
      controller: this.controller,
      log: o.log,
      gatewayRedis: o.gatewayRedis,
      observed: new Map(),
      published: new Map(),
    };
    this.sweepTimer = setInterval(() => void this.sweepOrphans(), o.orphanSweepMs ?? 60_000);
    this.sweepTimer.unref();
  }

  /**
   * The leader, with synced caches, removes published campaigns that have no TagCampaign from
   * every PushGateway's Redis it can reach (a deletion whose cleanup gave up while the Redis was
   * down, and whose in-memory retry died with an operator restart). See orphans.ts.
   */
  private async sweepOrphans(): Promise<void> {
    if (this.closed || this.sweeping || !this.o.manager.isLeader || !this.o.manager.ready()) return;
    this.sweeping = true;
    try {
      const live = () => new Set(this.campaigns(undefined).map((c) => c.metadata!.uid!));
      const gateways = this.controller.informer(PushGatewayResource);
      for (const gw of gateways.list(undefined)) {
        if (this.closed) return;
        const gatewayKey = objectKey(gw);
        try {
          const { redis, keys } = await this.o.gatewayRedis.of(gateways, gatewayKey);
          await sweepOrphanedCampaigns(redis, keys, gw, live, this.o.log);
        } catch (err) {
          this.o.log.debug(
            { gateway: gatewayKey, err: (err as Error).message },
            'orphan sweep skipped a gateway',
          );
        }
      }
    } finally {
      this.sweeping = false;
    }
  }

  private campaigns(ns: string | undefined): KubeObject[] {
    return this.controller.informer(TagCampaignResource).list(ns);
  }

  async sync(key: string): Promise<SyncResult> {
    const raw = this.controller.get(key);
    if (!raw) {
      this.env.observed.delete(key);
      this.env.published.delete(key);
      return;
    }
    const ns = raw.metadata!.namespace!;
    const gatewayKey = `${ns}/${gatewayNameOf(raw) ?? ''}`;
    const now = Date.now();
    if (raw.metadata?.deletionTimestamp) {
      await finalizeCampaign(this.env, raw, gatewayKey, {
        now,
        cleanupTimeoutMs: this.o.cleanupTimeoutMs ?? 300_000,
        abandon: (gk, id) => this.abandon(gk, id),
      });
      this.env.observed.delete(key);
      this.env.published.delete(key);
      return;
    }
    const previous = (raw as { status?: TagCampaignStatus }).status;
    const final = isFinal(previous);
    const tc = parse(raw);
    // Final: only late reads and acks are left to count, until the message's TTL has run out.
    const settleAt = final ? deliveriesSettleAt(previous!, tc.spec.message.ttlSeconds) : 0;
    if (final && now >= settleAt) return; // settled: nothing to read, nothing to write
    // Whatever brings the key here (policy and gateway events, its own status writes), Redis is
    // read at most once per pollMs for an unchanged spec: status writes stay bounded.
    const seen = this.env.observed.get(key);
    if (
      seen &&
      seen.uid === tc.metadata.uid &&
      seen.generation === (tc.metadata.generation ?? 0) &&
      now - seen.observedAt < this.pollMs - 250 &&
      this.controller.lastSync(key)?.ok
    )
      return { requeueAfterMs: seen.observedAt + this.pollMs - now };
    await runSteps(final ? LATE_DELIVERY_STEPS : SYNC_STEPS, {
      key,
      raw,
      tc,
      gatewayKey,
      now,
      env: this.env,
    });
    if (final) return { requeueAfterMs: Math.min(this.pollMs, settleAt - now) };
    const startAt = startAtOf(tc);
    // A campaign waiting for its start time is looked at again right at it.
    return { requeueAfterMs: startAt > now ? Math.min(this.pollMs, startAt - now + 50) : this.pollMs };
  }

  async updateStatus(key: string, last: SyncOutcome | undefined): Promise<void> {
    const raw = this.controller.get(key);
    if (!raw || raw.metadata?.deletionTimestamp) return;
    const previous = (raw as { status?: TagCampaignStatus }).status;
    // Final: written again only for delivered and acked counts read since (computeCampaignStatus).
    if (isFinal(previous) && !this.env.observed.get(key)?.progress) return;
    let tc: TagCampaign | undefined;
    let problem: CampaignProblem | undefined = last && !last.ok ? describeFailure(last.error) : undefined;
    try {
      tc = parseTagCampaign(raw);
    } catch (err) {
      problem = { reason: 'InvalidSpec', message: (err as Error).message, terminal: true };
    }
    const seen = this.env.observed.get(key);
    // Nothing observed yet (just started, or the first sync is still running): no status to tell.
    if (!seen && !problem) return;
    const fresh = seen && seen.uid === raw.metadata?.uid ? seen : undefined;
    const status = computeCampaignStatus({
      generation: raw.metadata?.generation ?? 0,
      ...(tc
        ? {
            spec: {
              suspend: tc.spec.suspend,
              cancel: tc.spec.cancel,
              dryRun: tc.spec.dryRun,
              startAt: startAtOf(tc),
              ...(tc.spec.schedule.deadline ? { deadline: Date.parse(tc.spec.schedule.deadline) } : {}),
            },
          }
        : {}),
      previous,
      ...(fresh?.progress ? { progress: fresh.progress } : {}),
      ...(fresh?.rate ? { rate: fresh.rate } : {}),
      ...(fresh?.noDispatcher ? { noDispatcher: fresh.noDispatcher } : {}),
      ...(problem ? { problem } : {}),
      // Time enters only through the observation, so a status-only event recomputes the same status.
      observedAt: fresh && !problem ? fresh.observedAt : Date.now(),
      cancelGraceMs: this.o.cancelGraceMs ?? 60_000,
    });
    const wrote = await writeStatus(
      this.o.client,
      TagCampaignResource,
      raw,
      status as Record<string, unknown>,
      FIELD_MANAGER,
    );
    if (wrote) await this.recordTransitions(raw, previous, status);
  }

  /**
   * An event for every phase transition (Normal; Failed is a Warning), and Warnings for what a
   * person should act on: the ETA past the deadline, the gateway or its Redis unreachable.
   */
  private async recordTransitions(
    raw: KubeObject,
    before: TagCampaignStatus | undefined,
    after: TagCampaignStatus,
  ): Promise<void> {
    const rec = (type: 'Normal' | 'Warning', reason: string, note: string) =>
      this.o.recorder.record(TagCampaignResource, raw, type, reason, 'Reconcile', note);
    const progressing = findCondition(after.conditions, 'Progressing');
    const was = findCondition(before?.conditions, 'Progressing');
    if (after.phase !== before?.phase && after.phase) {
      const reason =
        after.phase === 'Running' ? (before?.phase === 'Suspended' ? 'Resumed' : 'Started') : after.phase;
      await rec(after.phase === 'Failed' ? 'Warning' : 'Normal', reason, progressing?.message || after.phase);
    }
    if (progressing && progressing.reason !== was?.reason) {
      if (progressing.reason === 'ETAPastDeadline')
        await rec('Warning', 'ETAPastDeadline', progressing.message);
      if (PROBLEM_REASONS.has(progressing.reason))
        await rec('Warning', progressing.reason, progressing.message);
    }
    const capped = findCondition(after.conditions, 'RateCapped');
    if (capped?.status === 'True' && findCondition(before?.conditions, 'RateCapped')?.status !== 'True')
      await rec('Normal', 'RateCapped', capped.message);
  }

  /** State left in an unreachable Redis at deletion: retried every pollMs while this process lives. */
  private abandon(gatewayKey: string, id: string): void {
    this.orphans.set(id, { gatewayKey, id });
    if (this.orphanTimer) return;
    this.orphanTimer = setInterval(() => void this.retryOrphans(), this.pollMs);
    this.orphanTimer.unref();
  }

  private async retryOrphans(): Promise<void> {
    for (const { gatewayKey, id } of [...this.orphans.values()]) {
      try {
        const { redis, keys } = await this.o.gatewayRedis.of(
          this.controller.informer(PushGatewayResource),
          gatewayKey,
        );
        await removeCampaign(redis, keys, id);
        this.orphans.delete(id);
        this.o.log.info({ gateway: gatewayKey, id }, 'removed the state of a deleted campaign');
      } catch (err) {
        if (err instanceof GatewayRedisError && err.reason === 'GatewayNotFound') this.orphans.delete(id);
      }
    }
    if (!this.orphans.size && this.orphanTimer) {
      clearInterval(this.orphanTimer);
      this.orphanTimer = undefined;
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweepTimer);
    if (this.orphanTimer) clearInterval(this.orphanTimer);
  }
}

const PROBLEM_REASONS = new Set([
  'GatewayNotFound',
  'InvalidGateway',
  'RedisSecretMissing',
  'RedisUnavailable',
]);

const gatewayNameOf = (raw: KubeObject) =>
  (raw as { spec?: { gatewayRef?: { name?: string } } }).spec?.gatewayRef?.name;

/** Parses the stored object; a spec the schema refuses is terminal (InvalidSpec). */
function parse(raw: KubeObject): TagCampaign {
  try {
    return parseTagCampaign(raw);
  } catch (err) {
    if (err instanceof ApiValidationError) throw new TerminalError('InvalidSpec', err.message);
    throw err;
  }
}

/** A sync's error as a condition's reason and message. */
function describeFailure(err: unknown): CampaignProblem {
  const terminal = terminalCause(err);
  if (terminal) return { reason: terminal.reason, message: terminal.message, terminal: true };
  const cause = (err as { cause?: unknown }).cause ?? err;
  if (cause instanceof GatewayRedisError)
    return { reason: cause.reason, message: cause.message, terminal: false };
  const message = cause instanceof Error ? cause.message : String(cause);
  return { reason: 'RedisUnavailable', message: `the gateway's Redis: ${message}`, terminal: false };
}
