import { describe, expect, it } from 'vitest';
import { drainPlan } from './drain.js';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('drainPlan', () => {
  it.each([
    // total, rate/s, grace ms, expected ticks (100 ms each)
    [0, 500, 60_000, 0],
    [1, 500, 60_000, 1],
    [1000, 500, 60_000, 20],
    [30, 10, 20_000, 30],
    // 100k at 500/s would take 200 s: the grace (60 s) raises the rate
    [100_000, 500, 60_000, 600],
  ])('closes %i connections at %i/s within %i ms in %i ticks', (total, rate, grace, ticks) => {
    const plan = drainPlan(total, rate, grace);
    expect(plan).toHaveLength(ticks);
    expect(sum(plan)).toBe(total);
    expect(plan.every((n) => n >= 0)).toBe(true);
  });

  it('spreads evenly: no tick closes more than its share (+1)', () => {
    const plan = drainPlan(1000, 500, 60_000);
    expect(Math.max(...plan)).toBeLessThanOrEqual(50);
  });
});
