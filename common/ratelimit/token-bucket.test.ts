import { describe, expect, it } from 'vitest';
import { TokenBucket, fullBucket, takeToken, type TokenState } from './token-bucket.js';

describe('TokenBucket', () => {
  it('lets a burst through, then spaces callers at 1/qps', () => {
    let now = 0;
    const b = new TokenBucket(10, 3, () => now);
    expect([b.reserve(), b.reserve(), b.reserve()]).toEqual([0, 0, 0]);
    expect(b.reserve()).toBe(100);
    expect(b.reserve()).toBe(200);
    now = 1000; // a second refills 10 tokens, capped at the burst
    expect(b.reserve()).toBe(0);
  });

  it('rejects nonsense settings', () => {
    expect(() => new TokenBucket(0, 1)).toThrow(/perSecond must be > 0/);
    expect(() => new TokenBucket(1, 0.5)).toThrow(/burst >= 1/);
  });
});

describe('takeToken (state on any object)', () => {
  it('refuses when empty without going into debt, and refills at the rate up to the burst', () => {
    const rate = { perSecond: 2, burst: 4 };
    const s: TokenState & { other: string } = { other: 'x', ...fullBucket(rate, 0) };
    expect([1, 2, 3, 4, 5].map(() => takeToken(s, rate, 0))).toEqual([true, true, true, true, false]);
    expect(s.tokens).toBe(0);
    expect(takeToken(s, rate, 250)).toBe(false); // half a token
    expect(takeToken(s, rate, 500)).toBe(true); // one whole token after 500 ms at 2/s
    expect(takeToken(s, rate, 100_000)).toBe(true); // long idle: capped at the burst
    expect(s.tokens).toBe(3);
  });
});
