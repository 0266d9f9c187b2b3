import { describe, expect, it } from 'vitest';
import { campaignMessageId, campaignOfMessageId, type CampaignPlan } from '../../common/campaign/plan.js';
import { storedMessageId, encodeStoredMessage } from '../../common/protocol/server-frames.js';
import { evaluateTagExpression } from '../../common/redis/tag-expression.js';
import { campaignMessage, planTarget } from './dispatcher.js';
import { BUCKETS_PER_UNIT, UNITS, unitOfBucket } from './units.js';
import { DEVICE_BUCKETS } from '../../common/redis/keys.js';

function campaignPlan(overrides: Partial<CampaignPlan> = {}): CampaignPlan {
  return {
    id: 'c0ffee00-0000-4000-8000-000000000001',
    name: 'default/launch',
    generation: 1,
    app: 'app1',
    target: { allDevices: false, allOf: ['news'], anyOf: [], noneOf: [] },
    push: { data: {}, ttlSeconds: 3600, priority: 'normal' },
    rate: { perSecond: 100, burst: 10 },
    startAt: 0,
    state: 'run',
    dryRun: false,
    ...overrides,
  };
}

const target = (allOf: string[], anyOf: string[], noneOf: string[], allDevices = false) =>
  campaignPlan({ target: { allDevices, allOf, anyOf, noneOf } });

/** Which of these tag sets the plan's target selects (the push path's own evaluator). */
function selects(plan: CampaignPlan, devices: Record<string, string[]>): string[] {
  const t = planTarget(plan);
  if (!t) return [];
  if (t.kind === 'all') return Object.keys(devices).sort();
  if (t.kind !== 'tag') throw new Error(`unexpected target ${t.kind}`);
  const members = (tag: string) => new Set(Object.keys(devices).filter((d) => devices[d]!.includes(tag)));
  return [...evaluateTagExpression(t.expr, members, new Set(Object.keys(devices)))].sort();
}

describe('a plan as a target', () => {
  const devices = {
    a: ['news', 'vip', 'beijing'],
    b: ['news', 'vip', 'churned'],
    c: ['news', 'shanghai'],
    d: ['sports'],
    e: [],
  };

  it('allOf, anyOf and noneOf combine as all && (any) && !none', () => {
    expect(selects(target(['news', 'vip'], [], ['churned']), devices)).toEqual(['a']);
    expect(selects(target(['news'], ['beijing', 'shanghai'], []), devices)).toEqual(['a', 'c']);
    expect(selects(target([], ['sports', 'vip'], ['churned']), devices)).toEqual(['a', 'd']);
    expect(selects(target([], [], ['news']), devices)).toEqual(['d', 'e']);
  });

  it('every device, and nothing when the target names no tag', () => {
    expect(selects(target([], [], [], true), devices)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(planTarget(target([], [], []))).toBeUndefined();
  });
});

describe("a campaign's message", () => {
  it('one id per campaign, found back from the id; never mistaken for an API id', () => {
    const id = '4e7c1bd9-83db-429f-8630-e717f13f9bc5';
    expect(campaignOfMessageId(campaignMessageId(id))).toBe(id);
    expect(campaignOfMessageId('mkq3x0a1b2c3d4e5f6a7b8')).toBeUndefined();
    const long = 'x'.repeat(64);
    expect(campaignMessageId(long).length).toBeLessThanOrEqual(64);
    expect(campaignOfMessageId(campaignMessageId(long))).toBeUndefined();
  });

  it('the same body for every page: sent is the snapshot, exp sent + ttl', () => {
    const plan = campaignPlan({
      push: { data: { t: 1 }, ttlSeconds: 60, priority: 'high', collapseKey: 'k' },
    });
    const m = campaignMessage(plan, 1_000_000);
    expect(m).toEqual({
      id: campaignMessageId(plan.id),
      exp: 1_060_000,
      ttl: 60,
      priority: 'high',
      collapse: 'k',
      sent: 1_000_000,
      data: { t: 1 },
    });
    expect(storedMessageId(encodeStoredMessage(m))).toBe(m.id);
    expect(encodeStoredMessage(campaignMessage(plan, 1_000_000))).toBe(encodeStoredMessage(m));
  });
});

describe('work units', () => {
  it('cover every bucket, each unit a contiguous range of the same size', () => {
    expect(UNITS * BUCKETS_PER_UNIT).toBe(DEVICE_BUCKETS);
    const sizes = new Array<number>(UNITS).fill(0);
    for (let b = 0; b < DEVICE_BUCKETS; b++) sizes[unitOfBucket(b)]!++;
    expect(sizes.every((n) => n === BUCKETS_PER_UNIT)).toBe(true);
    expect(unitOfBucket(0)).toBe(0);
    expect(unitOfBucket(DEVICE_BUCKETS - 1)).toBe(UNITS - 1);
  });
});
