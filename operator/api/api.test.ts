import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { z } from 'zod';
import {
  ApiValidationError,
  immutable,
  withRules,
  isKnownTimeZone,
  parsePushGateway,
  parseRateLimitPolicy,
  parseTagCampaign,
  regionNodeSelector,
} from './index.js';
import {
  BAD_MANIFESTS,
  GOOD_MANIFESTS,
  ISSUE_14_BAD_MANIFESTS,
  badManifest,
  caseObjectName,
  minimalPushGateway,
  minimalRateLimitPolicy,
  minimalTagCampaign,
  DOCUMENTED_DEFAULTS,
  namesField,
  parsePath,
} from './testdata/manifests.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PARSERS = {
  PushGateway: parsePushGateway,
  TagCampaign: parseTagCampaign,
  RateLimitPolicy: parseRateLimitPolicy,
};

describe('minimal manifests', () => {
  it('PushGateway gets the documented defaults, and each region its region-label node selector', () => {
    const { spec } = parsePushGateway(minimalPushGateway());
    const { nodeSelector, ...region } = spec.regions[0]!;
    expect({ ...spec, regions: [region] }).toEqual(DOCUMENTED_DEFAULTS.PushGateway);
    expect(nodeSelector).toEqual({ 'topology.kubernetes.io/region': 'cn-north-1' });
  });

  it('TagCampaign gets the documented defaults', () => {
    expect(parseTagCampaign(minimalTagCampaign()).spec).toEqual(DOCUMENTED_DEFAULTS.TagCampaign);
  });

  it('RateLimitPolicy gets the documented defaults', () => {
    expect(parseRateLimitPolicy(minimalRateLimitPolicy()).spec).toEqual(DOCUMENTED_DEFAULTS.RateLimitPolicy);
  });
});

describe('samples in examples/', () => {
  const sample = (file: string) => YAML.parse(readFileSync(path.join(repoRoot, 'examples', file), 'utf8'));

  it('the PushGateway runs in the three regions, with its own values kept', () => {
    const pgw = parsePushGateway(sample('pushgateway.yaml'));
    expect(pgw.spec.regions.map((r) => r.name)).toEqual(['cn-north-1', 'cn-east-1', 'cn-south-1']);
    expect(pgw.spec.regions.map((r) => r.nodeSelector['topology.kubernetes.io/region'])).toEqual([
      'cn-north-1',
      'cn-east-1',
      'cn-south-1',
    ]);
    expect(pgw.spec.heartbeat.maxSeconds).toBe(540);
    expect(pgw.spec.nodeTuning.sysctls).toEqual({ 'net.core.somaxconn': '65535' });
  });

  it('the TagCampaign and the RateLimitPolicy parse', () => {
    expect(parseTagCampaign(sample('tagcampaign.yaml')).spec.schedule.quietHours?.timeZone).toBe(
      'Asia/Shanghai',
    );
    expect(parseRateLimitPolicy(sample('ratelimitpolicy.yaml')).spec.appIds).toEqual(['shop', 'news']);
  });
});

describe('bad manifests (the same table the API server test uses)', () => {
  it('has cases for all three kinds', () => {
    expect(new Set(BAD_MANIFESTS.map((c) => c.kind))).toEqual(new Set(Object.keys(PARSERS)));
  });

  BAD_MANIFESTS.forEach((c, i) => {
    const manifest = badManifest(c, caseObjectName(i));
    if (c.zod === 'prunes') {
      it(`${c.kind}: ${c.name} -> parse drops ${c.path}`, () => {
        const parsed = PARSERS[c.kind](manifest) as unknown as Record<string, unknown>;
        let node: unknown = parsed;
        for (const key of parsePath(c.path))
          node = (node as Record<string | number, unknown> | undefined)?.[key];
        expect(node).toBeUndefined();
      });
      return;
    }
    it(`${c.kind}: ${c.name} -> rejected at ${c.path}`, () => {
      let error: unknown;
      try {
        PARSERS[c.kind](manifest);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ApiValidationError);
      const paths = (error as ApiValidationError).issues.map((issue) => issue.path);
      expect(
        paths.some((p) => namesField(p, c.path)),
        `issues at ${paths.join(', ')}`,
      ).toBe(true);
    });
  });
});

describe('edge manifests that must be accepted (the same table the API server test uses)', () => {
  it('issue 14 added at least 60 invalid and 15 valid manifests', () => {
    expect(ISSUE_14_BAD_MANIFESTS.length).toBeGreaterThanOrEqual(60);
    expect(GOOD_MANIFESTS.length).toBeGreaterThanOrEqual(15);
  });

  GOOD_MANIFESTS.forEach((c, i) => {
    it(`${c.kind}: ${c.name}`, () => {
      expect(() => PARSERS[c.kind](badManifest(c, `good-${i}`))).not.toThrow();
    });
  });
});

describe('parse details', () => {
  it('keeps a region node selector that is given', () => {
    const m = minimalPushGateway();
    (m.spec!.regions as object[])[0] = { name: 'cn-east-1', nodeSelector: { pool: 'gateways' } };
    expect(parsePushGateway(m).spec.regions[0]!.nodeSelector).toEqual({ pool: 'gateways' });
    expect(regionNodeSelector({ name: 'x' })).toEqual({ 'topology.kubernetes.io/region': 'x' });
  });

  it('allows allDevices with noneOf (everyone except)', () => {
    const m = minimalTagCampaign();
    m.spec!.target = { allDevices: true, noneOf: ['opted-out'] };
    expect(parseTagCampaign(m).spec.target).toEqual({ allDevices: true, noneOf: ['opted-out'] });
  });

  it.each([
    ['Asia/Shanghai', true],
    ['America/Argentina/Buenos_Aires', true],
    ['Etc/GMT+8', true],
    ['UTC', true],
    ['Mars/Olympus_Mons', false],
    ['asia/shanghai', false],
    ['+08:00', false],
    ['Local', false],
    ['', false],
  ])('time zone %s known: %s', (zone, known) => {
    expect(isKnownTimeZone(zone)).toBe(known);
  });

  it('names every bad field in the error message', () => {
    const m = minimalRateLimitPolicy();
    m.spec!.perApp = { messagesPerSecond: 0, burst: -1 };
    expect(() => parseRateLimitPolicy(m)).toThrow(/spec\.perApp\.messagesPerSecond: .*spec\.perApp\.burst: /);
  });

  it('refuses a CEL rule without its TypeScript twin, unless it is a transition rule', () => {
    expect(() => withRules(z.object({ a: z.int() }), 'x', [{ rule: 'self.a > 0', message: 'm' }])).toThrow(
      /needs a TypeScript check/,
    );
    expect(() => withRules(z.object({ a: z.int() }), 'x', [immutable('a')])).not.toThrow();
  });

  it('rejects a wrong apiVersion or kind', () => {
    expect(() => parsePushGateway({ ...minimalPushGateway(), apiVersion: 'pushgate.dev/v1' })).toThrow(
      /apiVersion/,
    );
    expect(() => parsePushGateway(minimalTagCampaign())).toThrow(/kind/);
  });
});
