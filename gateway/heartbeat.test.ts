import { describe, expect, it } from 'vitest';
import { deadAfterMs, heartbeatPolicy, initialHeartbeat, onBeat, onMissed } from './heartbeat.js';

const policy = heartbeatPolicy({ minMs: 30_000, maxMs: 300_000, initialMs: 60_000 });

describe('heartbeat policy', () => {
  it.each([
    ['no history: the initial interval', undefined, 60_000],
    ['a learned interval', 120_000, 120_000],
    ['a learned interval below min is raised', 1000, 30_000],
    ['a learned interval above max is capped', 900_000, 300_000],
  ])('starts with %s', (_label, learned, expected) => {
    expect(initialHeartbeat(policy, learned).intervalMs).toBe(expected);
  });

  it.each([
    [
      'an on-time beat counts toward growth',
      { intervalMs: 60_000, streak: 0 },
      60_000,
      { intervalMs: 60_000, streak: 1 },
    ],
    [
      'the third on-time beat grows 1.5x',
      { intervalMs: 60_000, streak: 2 },
      59_000,
      { intervalMs: 90_000, streak: 0 },
    ],
    ['growth stops at max', { intervalMs: 250_000, streak: 2 }, 250_000, { intervalMs: 300_000, streak: 0 }],
    ['at max it stays', { intervalMs: 300_000, streak: 5 }, 290_000, { intervalMs: 300_000, streak: 6 }],
    [
      'a late beat (over 1.5x) halves',
      { intervalMs: 120_000, streak: 2 },
      190_000,
      { intervalMs: 60_000, streak: 0 },
    ],
    ['shrinking stops at min', { intervalMs: 40_000, streak: 0 }, 70_000, { intervalMs: 30_000, streak: 0 }],
  ])('%s', (_label, state, since, expected) => {
    expect(onBeat(policy, state, since)).toEqual(expected);
  });

  it('grows while stable and shrinks after a miss, within bounds', () => {
    let s = initialHeartbeat(policy);
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      s = onBeat(policy, s, s.intervalMs);
      seen.push(s.intervalMs);
    }
    expect(Math.max(...seen)).toBe(300_000);
    s = onMissed(policy, s);
    expect(s.intervalMs).toBe(150_000);
    expect(deadAfterMs(policy, s)).toBe(375_000);
  });

  it('rejects min above max', () => {
    expect(() => heartbeatPolicy({ minMs: 10, maxMs: 5, initialMs: 7 })).toThrow(/min 10 ms > max 5 ms/);
  });
});
