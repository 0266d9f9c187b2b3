import { isIPv4 } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loopbackSource } from './simulator.js';

describe('loopbackSource', () => {
  it('gives distinct bindable 127.1.x.y addresses (last octet 1..254) for every device of a large spread', () => {
    const spread = 1000;
    const seen = new Set<string>();
    for (let i = 0; i < spread; i++) {
      const a = loopbackSource(i, spread)!;
      expect(isIPv4(a), a).toBe(true);
      const [o1, o2, o3, o4] = a.split('.').map(Number);
      expect([o1, o2]).toEqual([127, 1]);
      expect(o3).toBeLessThanOrEqual(255);
      expect(o4, a).toBeGreaterThanOrEqual(1);
      expect(o4, a).toBeLessThanOrEqual(254);
      seen.add(a);
    }
    expect(seen.size).toBe(spread);
    // Devices beyond the spread reuse the addresses in turn.
    expect(loopbackSource(spread + 7, spread)).toBe(loopbackSource(7, spread));
    expect(loopbackSource(5, 0)).toBeUndefined();
  });
});
