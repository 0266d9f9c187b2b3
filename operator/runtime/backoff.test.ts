import { describe, expect, it } from 'vitest';
import { ItemBackoff, exponentialDelay, withJitter } from './backoff.js';

describe('exponentialDelay', () => {
  it.each([
    [0, 100, 10_000, 100],
    [1, 100, 10_000, 200],
    [3, 100, 10_000, 800],
    [7, 100, 10_000, 10_000],
    [5000, 100, 10_000, 10_000],
    [-1, 100, 10_000, 100],
  ])('attempt %i, base %i, max %i -> %i', (attempt, base, max, want) => {
    expect(exponentialDelay(attempt, base, max)).toBe(want);
  });
});

describe('withJitter', () => {
  it('stays within ±fraction', () => {
    expect(withJitter(1000, 0.2, () => 0)).toBe(800);
    expect(withJitter(1000, 0.2, () => 1)).toBe(1200);
    expect(withJitter(1000, 0.2, () => 0.5)).toBe(1000);
  });
});

describe('ItemBackoff', () => {
  it('doubles per failure of one key and is independent per key; forget resets', () => {
    const b = new ItemBackoff(10, 1000);
    expect([b.next('a'), b.next('a'), b.next('a')]).toEqual([10, 20, 40]);
    expect(b.next('b')).toBe(10);
    expect(b.attempts('a')).toBe(3);
    b.forget('a');
    expect(b.next('a')).toBe(10);
  });
});
