import { describe, expect, it } from 'vitest';
import { parseRateLimitPolicy, parseTagCampaign, type RateLimitPolicy } from '../../api/index.js';
import { decideCampaignRate } from './rate.js';

const campaign = (rate?: { messagesPerSecond: number; burst?: number }, appId = 'shop', gateway = 'main') =>
  parseTagCampaign({
    apiVersion: 'pushgate.dev/v1alpha1',
    kind: 'TagCampaign',
    metadata: { name: 'c', namespace: 'ns' },
    spec: {
      gatewayRef: { name: gateway },
      appId,
      target: { allOf: ['vip'] },
      message: { title: 'hi' },
      ...(rate ? { rate } : {}),
    },
  }).spec;
let order = 0;
const policy = (name: string, campaigns: object, appIds: string[] = [], gateway = 'main'): RateLimitPolicy =>
  parseRateLimitPolicy({
    apiVersion: 'pushgate.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: {
      name,
      namespace: 'ns',
      creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, order++)).toISOString(),
    },
    spec: { gatewayRef: { name: gateway }, appIds, campaigns },
  });
const exists = () => true;

describe('decideCampaignRate', () => {
  const shopPolicy = policy('shop', { defaultMessagesPerSecond: 200, maxMessagesPerSecond: 500 }, ['shop']);
  const catchAll = policy('all', { defaultMessagesPerSecond: 50, maxMessagesPerSecond: 80 });

  it.each([
    ['the policy default when spec.rate is absent', undefined, [shopPolicy], 200, false, 'ns/shop'],
    ['spec.rate within the maximum', { messagesPerSecond: 300 }, [shopPolicy], 300, false, 'ns/shop'],
    ['spec.rate above the maximum: capped', { messagesPerSecond: 9000 }, [shopPolicy], 500, true, 'ns/shop'],
    [
      'the app-specific policy over the catch-all',
      { messagesPerSecond: 400 },
      [catchAll, shopPolicy],
      400,
      false,
      'ns/shop',
    ],
    [
      'the catch-all policy when no policy names the app',
      { messagesPerSecond: 400 },
      [catchAll],
      80,
      true,
      'ns/all',
    ],
    [
      'no policy at all: the built-in limits (1000 default, 5000 max), never unlimited',
      { messagesPerSecond: 1e6 },
      [],
      5000,
      true,
      undefined,
    ],
    ['no policy, no spec.rate: the built-in default', undefined, [], 1000, false, undefined],
  ] as const)('%s', (_name, rate, policies, perSecond, capped, by) => {
    const d = decideCampaignRate(campaign(rate), 'ns', [...policies], exists);
    expect(d).toMatchObject({ perSecond, capped });
    expect(d.policy).toBe(by);
    if (capped) expect(d.message).toMatch(/allows at most/);
  });

  it('ignores a policy of another gateway, and says so in the message when none covers the app', () => {
    const other = policy(
      'other',
      { defaultMessagesPerSecond: 1, maxMessagesPerSecond: 2 },
      ['shop'],
      'secondary',
    );
    const d = decideCampaignRate(campaign({ messagesPerSecond: 100 }), 'ns', [other], exists);
    expect(d).toMatchObject({ perSecond: 100, capped: false });
    expect(d.message).toMatch(/no RateLimitPolicy covers app shop on PushGateway ns\/main/);
  });

  it('caps the burst at the maximum rate too', () => {
    const d = decideCampaignRate(
      campaign({ messagesPerSecond: 100, burst: 100_000 }),
      'ns',
      [shopPolicy],
      exists,
    );
    expect(d).toMatchObject({ perSecond: 100, burst: 500 });
  });
});
