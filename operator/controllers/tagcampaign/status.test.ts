import { describe, expect, it } from 'vitest';
import type { TagCampaignStatus } from '../../api/index.js';
import type { CampaignProgress } from '../../../common/campaign/plan.js';
import {
  computeCampaignStatus,
  deliveriesSettleAt,
  DELIVERY_COUNT_GRACE_MS,
  isFinal,
  progressText,
  shortDuration,
  ZERO_COUNTERS,
  type CampaignObservation,
} from './status.js';
import type { CampaignRateDecision } from './rate.js';

const T0 = Date.parse('2026-11-30T12:00:00Z');
const rate: CampaignRateDecision = {
  perSecond: 100,
  burst: 100,
  max: 5000,
  policy: 'ns/limits',
  capped: false,
  message: 'within',
};
const counters = (c: Partial<CampaignProgress['counters']>) => ({ ...ZERO_COUNTERS, ...c });
const progress = (
  p: Partial<CampaignProgress> & { c?: Partial<CampaignProgress['counters']> },
): CampaignProgress => ({
  counters: counters(p.c ?? {}),
  ...p,
});
const spec = { suspend: false, cancel: false, dryRun: false, startAt: T0 };
const base = (o: Partial<CampaignObservation>): CampaignObservation => ({
  generation: 3,
  spec,
  previous: undefined,
  observedAt: T0 + 1000,
  rate,
  cancelGraceMs: 60_000,
  ...o,
});
const conditionOf = (s: TagCampaignStatus, type: string) => s.conditions?.find((c) => c.type === type);

interface Row {
  name: string;
  o: Partial<CampaignObservation>;
  phase: TagCampaignStatus['phase'];
  /** type -> [status, reason] */
  conditions?: Record<string, [string, string]>;
  progress?: string;
  final?: boolean;
  eta?: string;
  rate?: number;
}

const rows: Row[] = [
  {
    name: 'before startTime: Pending, waiting',
    o: { spec: { ...spec, startAt: T0 + 60_000 }, progress: progress({}) },
    phase: 'Pending',
    conditions: { Progressing: ['False', 'WaitingForStartTime'], Suspended: ['False', 'NotSuspended'] },
    progress: '0/0',
  },
  {
    name: 'sending: Running with progress, the measured rate and the ETA from it',
    o: {
      progress: progress({
        snapshotAt: T0,
        startedAt: T0,
        ratePerSecond: 50,
        c: { targeted: 1000, sent: 400 },
      }),
    },
    phase: 'Running',
    conditions: { Progressing: ['True', 'Sending'], Complete: ['False', 'NotComplete'] },
    progress: '400/1000 (40%)',
    eta: '12s',
    rate: 50,
  },
  {
    name: 'no measured rate yet: the ETA from the planned rate',
    o: { progress: progress({ snapshotAt: T0, c: { targeted: 1000 } }) },
    phase: 'Running',
    eta: '10s',
    rate: 0,
  },
  {
    name: 'audience not snapshotted yet: no ETA (M still grows)',
    o: { progress: progress({ ratePerSecond: 50, c: { targeted: 300, sent: 10 } }) },
    phase: 'Running',
    eta: undefined,
  },
  {
    name: 'throttled by the app limit: Throttled with the dispatcher reason',
    o: { progress: progress({ snapshotAt: T0, throttled: 'AppLimit', c: { targeted: 10 } }) },
    phase: 'Running',
    conditions: { Throttled: ['True', 'AppLimit'] },
  },
  {
    name: 'quiet hours',
    o: { progress: progress({ snapshotAt: T0, throttled: 'QuietHours', c: { targeted: 10 } }) },
    phase: 'Running',
    conditions: { Throttled: ['True', 'QuietHours'] },
  },
  {
    name: 'ETA past the deadline: said so, rate unchanged',
    o: {
      spec: { ...spec, deadline: T0 + 5000 },
      progress: progress({ snapshotAt: T0, ratePerSecond: 100, c: { targeted: 10_000, sent: 100 } }),
    },
    phase: 'Running',
    conditions: { Progressing: ['True', 'ETAPastDeadline'] },
    rate: 100,
  },
  {
    name: 'suspended: Suspended, no rate, no ETA',
    o: {
      spec: { ...spec, suspend: true },
      progress: progress({ snapshotAt: T0, c: { targeted: 10, sent: 5 } }),
    },
    phase: 'Suspended',
    conditions: { Suspended: ['True', 'Suspended'], Progressing: ['False', 'Suspended'] },
    progress: '5/10 (50%)',
    rate: 0,
  },
  {
    name: 'the dispatchers finished: Completed, final',
    o: {
      progress: progress({
        snapshotAt: T0,
        startedAt: T0,
        finishedAt: T0 + 900,
        c: { targeted: 10, sent: 8, expired: 2 },
      }),
    },
    phase: 'Completed',
    conditions: {
      Complete: ['True', 'Completed'],
      Progressing: ['False', 'Completed'],
      Failed: ['False', 'NotFailed'],
    },
    progress: '10/10 (100%)',
    final: true,
  },
  {
    name: 'dry run finished: Completed (DryRunCompleted), nothing sent',
    o: {
      spec: { ...spec, dryRun: true },
      progress: progress({ snapshotAt: T0, finishedAt: T0 + 10, c: { targeted: 42 } }),
    },
    phase: 'Completed',
    conditions: { Complete: ['True', 'DryRunCompleted'] },
    final: true,
  },
  {
    name: 'every message failed: Failed, final',
    o: { progress: progress({ snapshotAt: T0, finishedAt: T0 + 10, c: { targeted: 3, failed: 3 } }) },
    phase: 'Failed',
    conditions: { Failed: ['True', 'AllFailed'] },
    final: true,
  },
  {
    name: 'the dispatchers stopped it (state lost): Failed, final, their words in the message',
    o: {
      progress: progress({ snapshotAt: T0, error: 'state lost: cursors gone', c: { targeted: 10, sent: 3 } }),
    },
    phase: 'Failed',
    conditions: { Failed: ['True', 'DispatcherStopped'], Progressing: ['False', 'DispatcherStopped'] },
    final: true,
  },
  {
    name: 'its gateway runs no dispatcher: Running, but Progressing False says why nothing moves',
    o: { noDispatcher: 'PushGateway ns/main runs no dispatcher', progress: progress({}) },
    phase: 'Running',
    conditions: { Progressing: ['False', 'NoDispatcher'] },
  },
  {
    name: 'cancelled before anything was sent: Cancelled, final at once',
    o: { spec: { ...spec, cancel: true }, progress: progress({}) },
    phase: 'Cancelled',
    conditions: { Progressing: ['False', 'Cancelled'] },
    final: true,
  },
  {
    name: 'cancelled mid-run: Cancelled, waiting for the dispatchers to stop (not final yet)',
    o: {
      spec: { ...spec, cancel: true },
      progress: progress({ snapshotAt: T0, startedAt: T0, c: { targeted: 10, sent: 4 } }),
    },
    phase: 'Cancelled',
    final: false,
  },
  {
    name: 'cancelled, the dispatchers stopped: final with their counts',
    o: {
      spec: { ...spec, cancel: true },
      progress: progress({
        snapshotAt: T0,
        startedAt: T0,
        finishedAt: T0 + 500,
        c: { targeted: 10, sent: 4 },
      }),
    },
    phase: 'Cancelled',
    progress: '4/10 (40%)',
    final: true,
  },
  {
    name: 'gateway missing before the first publish: Pending, the reason in Progressing',
    o: {
      problem: { reason: 'GatewayNotFound', message: 'PushGateway ns/main does not exist', terminal: false },
    },
    phase: 'Pending',
    conditions: { Progressing: ['False', 'GatewayNotFound'] },
  },
  {
    name: 'an invalid spec: Failed (InvalidSpec), not final (an edit may fix it)',
    o: { spec: undefined, problem: { reason: 'InvalidSpec', message: 'bad', terminal: true } },
    phase: 'Failed',
    conditions: { Failed: ['True', 'InvalidSpec'] },
    final: false,
  },
  {
    name: 'rate capped by the policy: RateCapped True',
    o: { rate: { ...rate, capped: true, message: 'capped' }, progress: progress({}) },
    phase: 'Running',
    conditions: { RateCapped: ['True', 'PolicyMaximum'] },
  },
];

describe('computeCampaignStatus', () => {
  for (const r of rows) {
    it(r.name, () => {
      const s = computeCampaignStatus(base(r.o));
      expect(s.phase).toBe(r.phase);
      expect(s.observedGeneration).toBe(3);
      for (const [type, [status, reason]] of Object.entries(r.conditions ?? {}))
        expect(conditionOf(s, type), type).toMatchObject({ status, reason, observedGeneration: 3 });
      if (r.progress !== undefined) expect(s.progress).toBe(r.progress);
      if (r.final !== undefined) expect(isFinal(s)).toBe(r.final);
      if ('eta' in r) expect(s.eta).toBe(r.eta);
      if (r.rate !== undefined) expect(s.ratePerSecond).toBe(r.rate);
    });
  }

  it('is deterministic: the same observation gives the same status (no write on a status-only event)', () => {
    const o = base({
      progress: progress({ snapshotAt: T0, ratePerSecond: 70, c: { targeted: 500, sent: 20 } }),
    });
    const first = computeCampaignStatus(o);
    expect(computeCampaignStatus({ ...o, previous: first })).toEqual(first);
  });

  it('a final status stays as it is, whatever is observed later', () => {
    const done = computeCampaignStatus(
      base({ progress: progress({ snapshotAt: T0, finishedAt: T0 + 5, c: { targeted: 1, sent: 1 } }) }),
    );
    const later = computeCampaignStatus(
      base({ previous: done, spec: { ...spec, suspend: true }, progress: progress({ c: { targeted: 9 } }) }),
    );
    expect(later).toBe(done);
  });

  it('after it is final, only delivered and acked follow the devices, and only up', () => {
    const done = computeCampaignStatus(
      base({
        progress: progress({
          snapshotAt: T0,
          finishedAt: T0 + 5,
          c: { targeted: 10, sent: 8, expired: 2, delivered: 6, acked: 5 },
        }),
      }),
    );
    expect(done.phase).toBe('Completed');
    // Devices offline at sending reconnect and read and ack it; the rest of the progress is ignored.
    const later = computeCampaignStatus(
      base({
        previous: done,
        observedAt: T0 + 60_000,
        progress: progress({ c: { targeted: 99, sent: 99, expired: 0, delivered: 8, acked: 7 } }),
      }),
    );
    expect(later.counters).toEqual({ ...done.counters, delivered: 8, acked: 7 });
    expect({ ...later, counters: undefined }).toEqual({ ...done, counters: undefined });
    // A progress hash Redis forgot reads as zeros: nothing goes down, and nothing is written.
    expect(computeCampaignStatus(base({ previous: later, progress: progress({}) }))).toBe(later);
    expect(computeCampaignStatus(base({ previous: later }))).toBe(later);
  });

  it('delivery counts may grow until the TTL of the last send has run out, if anything was sent', () => {
    const completionTime = '2026-11-30T12:00:10Z';
    const sent = {
      phase: 'Completed',
      completionTime,
      counters: counters({ targeted: 3, sent: 3 }),
    } as const;
    expect(deliveriesSettleAt(sent, 3600)).toBe(
      Date.parse(completionTime) + 3_600_000 + DELIVERY_COUNT_GRACE_MS,
    );
    expect(deliveriesSettleAt({ ...sent, counters: counters({ targeted: 3, expired: 3 }) }, 3600)).toBe(0);
  });

  it('keeps the counters of the last status while Redis cannot be read', () => {
    const running = computeCampaignStatus(
      base({ progress: progress({ snapshotAt: T0, c: { targeted: 10, sent: 6, delivered: 5 } }) }),
    );
    const s = computeCampaignStatus(
      base({ previous: running, problem: { reason: 'RedisUnavailable', message: 'down', terminal: false } }),
    );
    expect(s.phase).toBe('Running');
    expect(s.counters).toMatchObject({ targeted: 10, sent: 6, delivered: 5 });
    expect(conditionOf(s, 'Progressing')).toMatchObject({ status: 'False', reason: 'RedisUnavailable' });
  });

  it('startTime from the first send, completionTime from the dispatchers', () => {
    const s = computeCampaignStatus(
      base({
        progress: progress({
          snapshotAt: T0,
          startedAt: T0 + 1000,
          finishedAt: T0 + 61_000,
          c: { targeted: 1, sent: 1 },
        }),
      }),
    );
    expect(s.startTime).toBe('2026-11-30T12:00:01Z');
    expect(s.completionTime).toBe('2026-11-30T12:01:01Z');
  });
});

describe('progress and durations for kubectl get', () => {
  it.each([
    [{ targeted: 0 }, false, '0/0'],
    [{ targeted: 0 }, true, '0/0 (100%)'],
    [{ targeted: 3, sent: 1 }, true, '1/3 (33%)'],
    [{ targeted: 1000, sent: 999 }, true, '999/1000 (99%)'],
    [{ targeted: 10, sent: 5, expired: 3, failed: 2 }, true, '10/10 (100%)'],
  ])('%j -> %s', (c, snap, text) => expect(progressText(counters(c), snap)).toBe(text));
  it.each([
    [0, '0s'],
    [999, '1s'],
    [200_000, '3m20s'],
    [3_600_000, '1h'],
    [7_500_000, '2h5m'],
    [3 * 86_400_000 + 4 * 3_600_000 + 59_000, '3d4h'],
  ])('%d ms -> %s', (ms, text) => expect(shortDuration(ms)).toBe(text));
});
