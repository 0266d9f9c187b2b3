import { describe, expect, it } from 'vitest';
import { orphanedCampaigns } from './orphans.js';

const plan = (id: string, name: string) => ({
  id,
  name,
  generation: 1,
  app: 'shop',
  target: { allDevices: true, allOf: [], anyOf: [], noneOf: [] },
  push: { data: { title: 't' }, ttlSeconds: 60, priority: 'normal' },
  rate: { perSecond: 10, burst: 10 },
  startAt: 0,
  state: 'run',
  dryRun: false,
});

describe('orphanedCampaigns', () => {
  it('names published campaigns of the gateway namespace that no TagCampaign owns', () => {
    const published = [
      { id: 'u1', plan: plan('u1', 'team-a/live') },
      { id: 'u2', plan: plan('u2', 'team-a/deleted') },
    ];
    expect(orphanedCampaigns('team-a', published, new Set(['u1']))).toEqual(['u2']);
  });

  it('leaves plans of other namespaces (not ours to judge), unreadable plans and mismatched ids alone', () => {
    const published = [
      { id: 'u3', plan: plan('u3', 'team-b/elsewhere') },
      { id: 'u4', plan: { garbage: true } },
      { id: 'u5', plan: undefined },
      { id: 'u6', plan: plan('other-id', 'team-a/x') },
    ];
    expect(orphanedCampaigns('team-a', published, new Set())).toEqual([]);
  });
});
