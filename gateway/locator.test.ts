import { describe, expect, it } from 'vitest';
import type { GatewayRecord, ProbeStats } from '../common/redis/registry.js';
import { rankGateways } from './locator.js';

const now = 1_000_000;
const gw = (id: string, over: Partial<GatewayRecord> = {}): GatewayRecord => ({
  id,
  podName: id,
  namespace: 'push',
  region: 'cn-north-1',
  zone: 'cn-north-1a',
  endpoint: `ws://${id}/v1/connect`,
  connections: 100,
  maxConnections: 1000,
  ready: true,
  draining: false,
  updatedAt: now - 1000,
  ...over,
});
const rank = (
  records: GatewayRecord[],
  probes: Record<string, ProbeStats> = {},
  region = 'cn-north-1',
  device = 'dev-1',
) =>
  rankGateways(records, new Map(Object.entries(probes)), { device, region, now, limit: 3 }).map(
    (r) => r.record.id,
  );

describe('rankGateways', () => {
  it.each<[string, GatewayRecord[], Record<string, ProbeStats>, string[]]>([
    ['nearest region first', [gw('east', { region: 'cn-east-1' }), gw('north')], {}, ['north', 'east']],
    [
      'least loaded first within a region',
      [gw('busy', { connections: 900 }), gw('idle', { connections: 50 })],
      {},
      ['idle', 'busy'],
    ],
    [
      'drops draining, not ready, stale and full gateways',
      [
        gw('draining', { draining: true }),
        gw('notready', { ready: false }),
        gw('stale', { updatedAt: now - 60_000 }),
        gw('full', { connections: 1000 }),
        gw('ok'),
      ],
      {},
      ['ok'],
    ],
    [
      'healthy (probes) before unhealthy, even across regions',
      [gw('north-bad'), gw('east-good', { region: 'cn-east-1' })],
      { 'north-bad': { samples: 10, successRate: 0.5 }, 'east-good': { samples: 10, successRate: 1 } },
      ['east-good', 'north-bad'],
    ],
    [
      'an unprobed gateway counts as healthy',
      [gw('east', { region: 'cn-east-1' }), gw('north')],
      { east: { samples: 10, successRate: 1 } },
      ['north', 'east'],
    ],
    ['at most `limit` endpoints', [gw('a'), gw('b'), gw('c'), gw('d')], {}, ['?', '?', '?']],
  ])('%s', (label, records, probes, expected) => {
    const got = rank(records, probes);
    if (expected.includes('?')) expect(got).toHaveLength(expected.length);
    else expect(got, label).toEqual(expected);
  });

  it('spreads devices over equal gateways, stably per device', () => {
    const records = [gw('a'), gw('b'), gw('c')];
    const firsts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const first = rank(records, {}, 'cn-north-1', `d${i}`)[0]!;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
      expect(rank(records, {}, 'cn-north-1', `d${i}`)[0]).toBe(first);
    }
    for (const id of ['a', 'b', 'c']) expect(firsts.get(id)).toBeGreaterThan(60);
  });
});
