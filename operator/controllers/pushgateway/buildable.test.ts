import { describe, expect, it } from 'vitest';
import { parsePushGateway } from '../../api/index.js';
import { KubeApiError } from '../../runtime/kube.js';
import { TerminalError } from '../../runtime/errors.js';
import { buildAll } from './builders.js';
import { findUnbuildable } from './buildable.js';
import { explainApplyError } from './steps/apply.js';

const gw = (name: string, spec: Record<string, unknown> = {}) =>
  parsePushGateway({
    apiVersion: 'pushgate.dev/v1alpha1',
    kind: 'PushGateway',
    metadata: { name, namespace: 'n', uid: 'u', generation: 1 },
    spec: { regions: [{ name: 'cn-north-1' }], redis: { secretName: 's' }, ...spec },
  });
const build = (name: string, spec?: Record<string, unknown>) =>
  buildAll(gw(name, spec), { defaultImage: 'pushgate:test' });

describe('findUnbuildable', () => {
  it('finds nothing in what the sample spec builds', () => {
    expect(findUnbuildable(build('main'))).toEqual([]);
  });

  it('a sidecar reusing the gateway container name: named, with what to change (before the API server answers 500)', () => {
    const problems = findUnbuildable(build('main', { sidecars: [{ name: 'gateway', image: 'x:1' }] }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^Deployment main-cn-north-1: two containers with name "gateway" in the pod; .*spec\.sidecars/,
    );
  });

  it('names over the API server limits: the Service name and label values, with the fix', () => {
    const long = 'g'.repeat(60);
    const problems = findUnbuildable(build(long));
    expect(
      problems.some((p) =>
        /^Service g+-cn-north-1: a Service name must be a DNS label of at most 63/.test(p),
      ),
    ).toBe(true);
    expect(
      findUnbuildable(build('g'.repeat(64))).some((p) => /label .* over the 63 the API server takes/.test(p)),
    ).toBe(true);
  });
});

describe('explainApplyError', () => {
  const dep = { kind: 'Deployment', metadata: { name: 'main-cn-north-1' } };
  it('turns the raw 500 of a duplicate list key into a terminal sentence without the raw text', () => {
    const raw = new KubeApiError(
      500,
      'InternalError',
      'failed to create typed patch object (n/main-cn-north-1; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name="gateway"]',
      '/apis/apps/v1/namespaces/n/deployments/main-cn-north-1',
    );
    const err = explainApplyError(dep, raw);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as TerminalError).message).toBe(
      'the Deployment main-cn-north-1 built from this spec has two entries with name="gateway" in spec.template.spec.containers; names in the pod must be unique (check spec.sidecars)',
    );
  });

  it('a 422 is terminal and keeps the field the API server names; a conflict or a 503 stays transient', () => {
    const invalid = new KubeApiError(
      422,
      'Invalid',
      'Deployment.apps "main-cn-north-1" is invalid: spec.template.spec.containers[0].image: Invalid value: "x ": must not have leading or trailing whitespace',
      '/apis/apps/v1/...',
    );
    const err = explainApplyError(dep, invalid) as TerminalError;
    expect(err.reason).toBe('ApplyFailed');
    expect(err.message).toBe(
      'the API server refuses the Deployment main-cn-north-1 built from this spec: spec.template.spec.containers[0].image: Invalid value: "x ": must not have leading or trailing whitespace',
    );
    for (const status of [409, 503]) {
      const e = new KubeApiError(status, 'x', 'y', '/p');
      expect(explainApplyError(dep, e)).toBe(e);
    }
  });
});
