import { describe, expect, it } from 'vitest';
import { parseRateLimitPolicy } from '../../api/index.js';
import { EVERY_APP, planPolicies } from './plan.js';

const policy = (name: string, created: string, spec: Record<string, unknown>) =>
  parseRateLimitPolicy({
    apiVersion: 'pushgate.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: { name, namespace: 'ns', creationTimestamp: created },
    spec: {
      gatewayRef: { name: 'main' },
      campaigns: { defaultMessagesPerSecond: 1, maxMessagesPerSecond: 1 },
      ...spec,
    },
  });

describe('planPolicies', () => {
  const exists = (_ns: string, name: string) => name === 'main';

  it.each([
    {
      what: 'one policy publishes its limit for each app',
      policies: [
        policy('a', '2026-01-01T00:00:00Z', { appIds: ['x', 'y'], perApp: { messagesPerSecond: 5 } }),
      ],
      published: { a: ['x', 'y'] },
      conflicts: { a: [] },
    },
    {
      what: 'the later of two policies claiming one app gets the conflict, naming the earlier',
      policies: [
        policy('later', '2026-01-02T00:00:00Z', { appIds: ['x', 'z'] }),
        policy('first', '2026-01-01T00:00:00Z', { appIds: ['x'] }),
      ],
      published: { first: ['x'], later: ['z'] },
      conflicts: { first: [], later: [{ app: 'x', heldBy: 'ns/first' }] },
    },
    {
      what: 'two policies without appIds claim every app: the later conflicts',
      policies: [policy('b', '2026-01-01T00:00:01Z', {}), policy('a', '2026-01-01T00:00:01Z', {})],
      published: { a: [EVERY_APP], b: [] },
      conflicts: { a: [], b: [{ app: EVERY_APP, heldBy: 'ns/a' }] },
    },
    {
      what: 'policies on different gateways never conflict; a missing gateway publishes nothing',
      policies: [
        policy('a', '2026-01-01T00:00:00Z', { appIds: ['x'] }),
        policy('b', '2026-01-02T00:00:00Z', { appIds: ['x'], gatewayRef: { name: 'gone' } }),
      ],
      published: { a: ['x'], b: [] },
      conflicts: { a: [], b: [] },
    },
  ])('$what', ({ policies, published, conflicts }) => {
    const plan = planPolicies(policies, exists);
    const byName = Object.fromEntries(plan.map((d) => [d.key.split('/')[1], d]));
    for (const [name, apps] of Object.entries(published))
      expect(Object.keys(byName[name]!.published).sort()).toEqual(apps);
    for (const [name, list] of Object.entries(conflicts)) expect(byName[name]!.conflicts).toEqual(list);
  });

  it('publishes the spec as the effective limit, naming the policy', () => {
    const [d] = planPolicies(
      [
        policy('a', '2026-01-01T00:00:00Z', {
          appIds: ['x'],
          perApp: { messagesPerSecond: 7, burst: 3, maxDeferredMessages: 9 },
        }),
      ],
      exists,
    );
    expect(d!.published.x).toEqual({
      ratePerSecond: 7,
      burst: 3,
      maxDeferred: 9,
      configuredRatePerSecond: 7,
      policy: 'ns/a',
      adaptive: {
        enabled: true,
        errorRatioPercent: 5,
        timeoutRatioPercent: 10,
        windowSeconds: 30,
        decreasePercent: 50,
        recoveryPercent: 10,
        recoveryIntervalSeconds: 10,
        minRatePercent: 10,
      },
    });
  });

  it('publishes the daily caps and the adaptive parameters the gateways enforce', () => {
    const [d] = planPolicies(
      [
        policy('a', '2026-01-01T00:00:00Z', {
          appIds: ['x'],
          perDevice: { messagesPerDay: 5, highPriorityMessagesPerDay: 2 },
          adaptive: { enabled: false, decreasePercent: 30 },
        }),
      ],
      exists,
    );
    expect(d!.published.x!.perDevice).toEqual({ messagesPerDay: 5, highPriorityMessagesPerDay: 2 });
    expect(d!.published.x!.adaptive).toMatchObject({
      enabled: false,
      decreasePercent: 30,
      windowSeconds: 30,
    });
  });
});
