import { describe, expect, it } from 'vitest';
import { isStorageUnavailable, StorageHealth, StorageUnavailableError } from './availability.js';

describe('StorageHealth', () => {
  it('is unhealthy before the first check, healthy after one, stale after staleMs without one', () => {
    const h = new StorageHealth(1500);
    expect(h.healthy(1000)).toBe(false);
    h.ok(1000);
    expect(h.healthy(2499)).toBe(true);
    expect(h.healthy(2500)).toBe(false);
  });

  it('does not count a stall of this process towards staleness', () => {
    const h = new StorageHealth(1500);
    h.ok(1000);
    // Frozen for 6 s: the first thing after waking may be a request, before any check ran.
    h.stalled(6000);
    expect(h.healthy(7400)).toBe(true);
    expect(h.healthy(8500)).toBe(false);
  });

  it('a stall before any answer does not make it healthy', () => {
    const h = new StorageHealth(1500);
    h.stalled(6000);
    expect(h.healthy(100)).toBe(false);
  });

  it('a failure refuses at once and cuts guarded work short', async () => {
    const h = new StorageHealth(1500);
    h.ok();
    const never = h.guard(() => new Promise<void>(() => {}));
    h.failed('Command timed out');
    await expect(never).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(h.guard(async () => 1)).rejects.toThrow(/storage unavailable: Command timed out/);
    expect(isStorageUnavailable(new StorageUnavailableError('x'))).toBe(true);
  });
});
