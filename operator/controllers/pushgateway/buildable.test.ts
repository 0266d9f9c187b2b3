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

  // The CRD refuses both cases below (a sidecar named gateway, a name over its budget); the
  // check is the operator's second line for what reaches it anyway (an older CRD, a rule CEL
  // cannot express), so it is shown on the built objects themselves.
  type Pod = { containers: { name: string; image: string }[] };
  const deploymentOf = (objs: ReturnType<typeof build>) =>
    objs.find((o) => o.kind === 'Deployment') as { spec: { template: { spec: Pod } } };

  it('two children of one kind and name (a region named dispatcher, past the CRD): named', () => {
    const objs = build('main');
    const region = objs.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'main-cn-north-1')!;
    region.metadata!.name = 'main-dispatcher';
    expect(findUnbuildable(objs)).toEqual([
      "two objects would be Deployment main-dispatcher; a region may not be named dispatcher (the campaign dispatcher's Deployment)",
    ]);
  });

  it('two containers of one name in the pod: named, with what to change (before the API server answers 500)', () => {
    const objs = build('main');
    deploymentOf(objs).spec.template.spec.containers.push({ name: 'gateway', image: 'x:1' });
    const problems = findUnbuildable(objs);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^Deployment main-cn-north-1: two containers with name "gateway" in the pod; .*spec\.sidecars/,
    );
  });

  it('names over the API server limits: the Service name and label values, with the fix', () => {
    const objs = build('main');
    const svc = objs.find((o) => o.kind === 'Service')!;
    svc.metadata!.name = `${'g'.repeat(60)}-cn-north-1`;
    svc.metadata!.labels = { ...svc.metadata!.labels, 'pushgate.dev/gateway': 'g'.repeat(64) };
    const problems = findUnbuildable(objs);
    expect(problems).toEqual([
      `Service ${'g'.repeat(60)}-cn-north-1: a Service name must be a DNS label of at most 63 characters (it is 71); shorten the PushGateway name or the region name`,
      `Service ${'g'.repeat(60)}-cn-north-1: label pushgate.dev/gateway would be 64 characters, over the 63 the API server takes; shorten the PushGateway name`,
    ]);
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
