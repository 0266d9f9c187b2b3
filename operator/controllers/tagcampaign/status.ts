import type { CampaignCounters, CampaignPhase, TagCampaignStatus } from '../../api/index.js';
import type { CampaignProgress } from '../../../common/campaign/plan.js';
import { findCondition, setConditions, type ConditionInput } from '../../runtime/conditions.js';
import type { CampaignRateDecision } from './rate.js';

/**
 * Phases after which status is final: phase, conditions, times and the send counts never change
 * again. Only what devices report later still moves (lateDeliveries).
 */
export const FINAL_PHASES: readonly CampaignPhase[] = ['Completed', 'Failed', 'Cancelled'];

/** A status that is final: a finished phase with its completionTime. */
export const isFinal = (s: TagCampaignStatus | undefined): boolean =>
  !!s?.completionTime && !!s.phase && FINAL_PHASES.includes(s.phase);

/** How long after a message's TTL the gateways may still be counting its last reads and acks. */
export const DELIVERY_COUNT_GRACE_MS = 30_000;

/**
 * Until when (ms since the epoch) a final campaign's delivered and acked counts may still grow:
 * a device offline while it was sent reads and acks it on reconnect, until its TTL runs out.
 * 0 when nothing was sent.
 */
export function deliveriesSettleAt(s: TagCampaignStatus, ttlSeconds: number): number {
  if (!s.completionTime || !s.counters?.sent) return 0;
  return Date.parse(s.completionTime) + ttlSeconds * 1000 + DELIVERY_COUNT_GRACE_MS;
}

/**
 * A final status with the delivered and acked counts of a later observation: only these move,
 * and only up (a progress hash lost with Redis reads as zeros and changes nothing). The same
 * status object when nothing grew, so no write.
 */
function lateDeliveries(prev: TagCampaignStatus, p: CampaignProgress | undefined): TagCampaignStatus {
  const before = { ...ZERO_COUNTERS, ...prev.counters };
  if (!p) return prev;
  const delivered = Math.max(before.delivered, p.counters.delivered);
  const acked = Math.max(before.acked, p.counters.acked);
  if (delivered === before.delivered && acked === before.acked) return prev;
  return { ...prev, counters: { ...before, delivered, acked } };
}

/** Why the controller could not do its part this time (a condition's reason and message). */
export interface CampaignProblem {
  reason: string;
  message: string;
  /** Retrying cannot fix it (an invalid spec): the campaign is Failed until its spec changes. */
  terminal: boolean;
}

export interface CampaignObservation {
  generation: number;
  /** What the spec asks (undefined: the stored spec does not parse). */
  spec?: {
    suspend: boolean;
    cancel: boolean;
    dryRun: boolean;
    /** ms since the epoch. */
    startAt: number;
    deadline?: number;
  };
  previous: TagCampaignStatus | undefined;
  /** The campaign's progress in Redis, as read at `observedAt` (undefined: never read). */
  progress?: CampaignProgress;
  /** ms since the epoch: when progress was read. Every time-derived field is relative to it. */
  observedAt: number;
  rate?: CampaignRateDecision;
  /** Why no dispatcher can send it (its PushGateway runs none), when that is so. */
  noDispatcher?: string;
  problem?: CampaignProblem;
  /** How long a cancelled campaign waits for the dispatchers' final counts before status is final. */
  cancelGraceMs: number;
}

/** Every counter at zero (before anything was counted). */
export const ZERO_COUNTERS: CampaignCounters = {
  targeted: 0,
  sent: 0,
  delivered: 0,
  acked: 0,
  deferred: 0,
  expired: 0,
  failed: 0,
};

export const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** 3m20s, 2h5m, 3d4h: the two largest units, for a column. */
export function shortDuration(ms: number): string {
  let s = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts: [number, string][] = [
    [d, 'd'],
    [h, 'h'],
    [m, 'm'],
    [s, 's'],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return '0s';
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n}${u}`)
    .join('');
}

/** Targeted devices the dispatchers are done with: sent, expired or failed. */
export const doneOf = (c: CampaignCounters) => c.sent + c.expired + c.failed;

/** `N/M (P%)`; the percent is rounded down, so 100% means every target is done. */
export function progressText(c: CampaignCounters, snapshotDone: boolean): string {
  const done = doneOf(c);
  if (c.targeted === 0) return snapshotDone ? '0/0 (100%)' : '0/0';
  return `${done}/${c.targeted} (${Math.floor((Math.min(done, c.targeted) * 100) / c.targeted)}%)`;
}

const cond = (
  type: string,
  status: boolean,
  reason: string,
  message: string,
  generation: number,
): ConditionInput => ({
  type,
  status: status ? 'True' : 'False',
  reason,
  message,
  observedGeneration: generation,
});

/**
 * The status of a campaign, from what the controller observed (pure and deterministic: the
 * same observation gives the same status, so a status-only event never causes a write; time
 * enters only as `observedAt`, the moment progress was read).
 *
 * Phase: Failed (the spec cannot run) > Cancelled (spec.cancel) > Failed (the dispatchers
 * stopped it: progress.error; or every target failed) >
 * Completed (the dispatchers finished) > the previous phase while the gateway or its Redis
 * cannot be reached > Suspended (spec.suspend) > Pending (before startAt) > Running.
 * A Completed, Failed-by-sending or Cancelled status gets completionTime and is final; after
 * that only delivered and acked follow the devices (lateDeliveries).
 */
export function computeCampaignStatus(o: CampaignObservation): TagCampaignStatus {
  const prev = o.previous;
  if (isFinal(prev)) return lateDeliveries(prev!, o.progress);
  const gen = o.generation;
  const p = o.progress;
  const counters: CampaignCounters = p ? { ...p.counters } : { ...ZERO_COUNTERS, ...prev?.counters };
  const snapshotDone = p?.snapshotAt !== undefined;
  const now = o.observedAt;
  const spec = o.spec;
  const prevProgressing = findCondition(prev?.conditions, 'Progressing');

  let phase: CampaignPhase;
  let final = false;
  let progressing: ConditionInput;
  let completeReason = 'NotComplete';
  let failedCond = cond('Failed', false, 'NotFailed', '', gen);
  const allFailed = !!p?.finishedAt && counters.targeted > 0 && counters.failed >= counters.targeted;

  if (!spec || o.problem?.terminal) {
    phase = 'Failed';
    const msg = o.problem?.message ?? 'the stored spec does not parse';
    failedCond = cond('Failed', true, o.problem?.reason ?? 'InvalidSpec', msg, gen);
    progressing = cond('Progressing', false, o.problem?.reason ?? 'InvalidSpec', msg, gen);
  } else if (spec.cancel) {
    phase = 'Cancelled';
    const since =
      prevProgressing?.reason === 'Cancelled' ? Date.parse(prevProgressing.lastTransitionTime) : now;
    // Final when the dispatchers have stopped, when none ever sent, or after the grace period.
    final =
      !!p && (p.finishedAt !== undefined || p.startedAt === undefined || now - since >= o.cancelGraceMs);
    progressing = cond(
      'Progressing',
      false,
      'Cancelled',
      `cancelled (spec.cancel): nothing more is sent; ${doneOf(counters)} of ${counters.targeted} targets done` +
        (final ? '' : ', waiting for the dispatchers to stop'),
      gen,
    );
  } else if (p?.error) {
    // The dispatchers stopped it for good (e.g. its Redis state was lost): it sends nothing more.
    phase = 'Failed';
    final = true;
    const msg = `the dispatchers stopped the campaign: ${p.error}; create a new campaign to send again`;
    failedCond = cond('Failed', true, 'DispatcherStopped', msg, gen);
    progressing = cond('Progressing', false, 'DispatcherStopped', msg, gen);
  } else if (allFailed) {
    phase = 'Failed';
    final = true;
    const msg = `all ${counters.targeted} messages failed`;
    failedCond = cond('Failed', true, 'AllFailed', msg, gen);
    progressing = cond('Progressing', false, 'AllFailed', msg, gen);
  } else if (p?.finishedAt !== undefined) {
    phase = 'Completed';
    final = true;
    completeReason = spec.dryRun ? 'DryRunCompleted' : 'Completed';
    progressing = cond(
      'Progressing',
      false,
      completeReason,
      spec.dryRun
        ? `dry run: ${counters.targeted} devices targeted, nothing sent`
        : `${counters.sent} sent, ${counters.expired} expired, ${counters.failed} failed of ${counters.targeted} targeted`,
      gen,
    );
  } else if (o.problem) {
    phase = prev?.phase ?? 'Pending';
    progressing = cond('Progressing', false, o.problem.reason, o.problem.message, gen);
  } else if (spec.suspend) {
    phase = 'Suspended';
    progressing = cond(
      'Progressing',
      false,
      'Suspended',
      'suspended (spec.suspend): the cursor is kept',
      gen,
    );
  } else if (now < spec.startAt) {
    phase = 'Pending';
    progressing = cond(
      'Progressing',
      false,
      'WaitingForStartTime',
      `sending starts at ${rfc3339(spec.startAt)}`,
      gen,
    );
  } else if (o.noDispatcher) {
    phase = 'Running';
    progressing = cond('Progressing', false, 'NoDispatcher', o.noDispatcher, gen);
  } else {
    phase = 'Running';
    progressing = cond('Progressing', true, 'Sending', `sending at ${o.rate?.perSecond ?? '?'}/s`, gen);
  }

  // Rate and ETA: only while Running.
  const planned = o.rate?.perSecond ?? prev?.plannedRatePerSecond;
  const measured = p?.ratePerSecond ?? 0;
  const ratePerSecond = phase === 'Running' ? Math.round(measured) : 0;
  let estimatedCompletion: number | undefined;
  if (phase === 'Running' && snapshotDone) {
    const remaining = Math.max(0, counters.targeted - doneOf(counters));
    const r = measured > 0 ? measured : (planned ?? 0);
    if (r > 0) estimatedCompletion = now + Math.ceil((remaining / r) * 1000);
  }
  const deadline = spec?.deadline;
  if (
    phase === 'Running' &&
    estimatedCompletion !== undefined &&
    deadline !== undefined &&
    estimatedCompletion > deadline
  ) {
    const remaining = counters.targeted - doneOf(counters);
    const reachable = Math.max(
      0,
      Math.floor(((deadline - now) / 1000) * (measured > 0 ? measured : (planned ?? 0))),
    );
    progressing = cond(
      'Progressing',
      true,
      'ETAPastDeadline',
      `at ${measured > 0 ? Math.round(measured) : planned}/s the last message would go out at ${rfc3339(estimatedCompletion)}, ` +
        `after the deadline ${rfc3339(deadline)}: about ${Math.max(0, remaining - reachable)} devices will be counted expired. ` +
        `The rate is not raised by itself: raise spec.rate${o.rate ? ` (at most ${o.rate.max}/s)` : ''} or move the deadline`,
      gen,
    );
  }

  const throttled =
    phase === 'Running' && p?.throttled
      ? cond('Throttled', true, p.throttled, throttleText(p.throttled), gen)
      : cond('Throttled', false, 'NotThrottled', '', gen);
  const conditions: ConditionInput[] = [
    progressing,
    cond(
      'Suspended',
      phase === 'Suspended',
      phase === 'Suspended' ? 'Suspended' : 'NotSuspended',
      phase === 'Suspended' ? 'spec.suspend is true' : '',
      gen,
    ),
    cond(
      'Complete',
      phase === 'Completed',
      completeReason,
      phase === 'Completed' ? progressing.message : '',
      gen,
    ),
    failedCond,
    throttled,
  ];
  if (o.rate)
    conditions.push(
      cond(
        'RateCapped',
        o.rate.capped,
        o.rate.capped ? 'PolicyMaximum' : o.rate.policy ? 'WithinPolicy' : 'BuiltInLimits',
        o.rate.message,
        gen,
      ),
    );
  else {
    const prevCapped = findCondition(prev?.conditions, 'RateCapped');
    if (prevCapped) conditions.push({ ...prevCapped, observedGeneration: gen });
  }

  const startTime = p?.startedAt !== undefined ? rfc3339(p.startedAt) : prev?.startTime;
  const completionAt = final ? (p?.finishedAt ?? now) : undefined;
  return {
    observedGeneration: gen,
    conditions: setConditions(prev?.conditions, conditions, new Date(now)),
    phase,
    counters,
    progress: progressText(counters, snapshotDone || final),
    ...(planned !== undefined ? { plannedRatePerSecond: planned } : {}),
    ratePerSecond,
    ...(estimatedCompletion !== undefined
      ? {
          estimatedCompletionTime: rfc3339(estimatedCompletion),
          eta: shortDuration(estimatedCompletion - now),
        }
      : {}),
    ...(startTime ? { startTime } : {}),
    ...(completionAt !== undefined ? { completionTime: rfc3339(completionAt) } : {}),
  };
}

function throttleText(reason: NonNullable<CampaignProgress['throttled']>): string {
  switch (reason) {
    case 'CampaignRate':
      return "held to the campaign's own rate";
    case 'AppLimit':
      return "held back by the app's rate limit (RateLimitPolicy perApp), shared with its other pushes and campaigns";
    case 'QuietHours':
      return 'inside quiet hours: sending resumes at their end (deferred, not dropped)';
    case 'DeviceCap':
      return "held back by the devices' daily caps (RateLimitPolicy perDevice)";
  }
}
