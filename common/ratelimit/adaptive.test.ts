import { describe, expect, it } from 'vitest';
import { parseAdaptiveState } from './adaptive.js';
import { shardPlan, type AppLimitConfig } from './app-limit.js';
import { AppLimitConfigs, withAdaptiveFactor } from './releaser.js';
import { silentLogger } from '../logger.js';
import type { PgRedis } from '../redis/connection.js';
import { redisKeys } from '../redis/keys.js';

const adaptive = {
  enabled: true,
  errorRatioPercent: 5,
  timeoutRatioPercent: 10,
  windowSeconds: 30,
  decreasePercent: 50,
  recoveryPercent: 10,
  recoveryIntervalSeconds: 10,
  minRatePercent: 10,
};
const cfg: AppLimitConfig = {
  ratePerSecond: 800,
  burst: 800,
  maxDeferred: 1000,
  configuredRatePerSecond: 800,
  adaptive,
};

describe('adaptive throttling: the rate in force', () => {
  it('reads the state the gateways step ("factor|changedAt|reason|evaluatedAt"), and nothing malformed', () => {
    expect(parseAdaptiveState('0.5|1700000000000|ErrorRatio|1700000000500')).toEqual({
      factor: 0.5,
      changedAt: 1700000000000,
      reason: 'ErrorRatio',
    });
    for (const bad of [undefined, '', 'x|1|A|1', '0|1|A|1', '1.5|1|A|1', '0.5|1'])
      expect(parseAdaptiveState(bad)).toBeUndefined();
  });

  it('paces at configured x factor, never below minRatePercent, and keeps the shard plan of the configured rate', () => {
    const cut = withAdaptiveFactor(cfg, '0.5|1|ErrorRatio|1');
    expect(cut.ratePerSecond).toBe(400);
    expect(cut.configuredRatePerSecond).toBe(800);
    expect(shardPlan(cut).shards).toBe(shardPlan(cfg).shards);
    expect(shardPlan(cut).limits[0]!.intervalMs).toBe(2 * shardPlan(cfg).limits[0]!.intervalMs);
    expect(
      withAdaptiveFactor({ ...cfg, adaptive: { ...adaptive, minRatePercent: 60 } }, '0.5|1|ErrorRatio|1')
        .ratePerSecond,
    ).toBe(480);
  });

  it('ignores the state when adaptive throttling is off, absent, or the factor is 1', () => {
    expect(
      withAdaptiveFactor({ ...cfg, adaptive: { ...adaptive, enabled: false } }, '0.5|1|ErrorRatio|1'),
    ).toEqual({
      ...cfg,
      adaptive: { ...adaptive, enabled: false },
    });
    const { adaptive: _, ...plain } = cfg;
    expect(withAdaptiveFactor(plain, '0.5|1|ErrorRatio|1').ratePerSecond).toBe(800);
    expect(withAdaptiveFactor(cfg, '1|1|Healthy|1').ratePerSecond).toBe(800);
    expect(withAdaptiveFactor(cfg, undefined).ratePerSecond).toBe(800);
  });
});

describe('published limits: a policy without appIds ("*")', () => {
  const keys = redisKeys('t');
  const stub = (limits: Record<string, AppLimitConfig>, adaptiveState: Record<string, string> = {}) =>
    ({
      hgetall: (k: string) =>
        Promise.resolve(
          k === keys.appLimitConfig()
            ? Object.fromEntries(Object.entries(limits).map(([a, c]) => [a, JSON.stringify(c)]))
            : adaptiveState,
        ),
    }) as unknown as PgRedis;

  it('limits every app without an entry of its own, each with its own adaptive factor; its own entry wins', async () => {
    const own: AppLimitConfig = { ratePerSecond: 5, burst: 5, maxDeferred: 10 };
    const c = new AppLimitConfigs(
      stub({ '*': cfg, mine: own }, { shop: '0.5|1|ErrorRatio|1' }),
      keys,
      silentLogger,
      1000,
      () => ['shop', 'mine', 'news'],
    );
    await c.refresh();
    expect(c.get('mine')).toEqual(own);
    expect(c.get('shop')!.ratePerSecond).toBe(400);
    expect(c.get('news')!.ratePerSecond).toBe(800);
    expect(c.get('late')!.ratePerSecond).toBe(800); // an app this process did not know, asked about
    expect(c.apps().sort()).toEqual(['late', 'mine', 'news', 'shop']);
  });

  it('without "*" an app with no entry is not limited', async () => {
    const c = new AppLimitConfigs(stub({ mine: cfg }), keys, silentLogger, 1000, () => ['shop']);
    await c.refresh();
    expect(c.get('shop')).toBeUndefined();
    expect(c.apps()).toEqual(['mine']);
  });
});
