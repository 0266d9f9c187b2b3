import { describe, expect, it } from 'vitest';
import { resourceOfPath, resourcePath, splitKey } from './kube.js';
import { Resources, resourceOf } from './resources.js';

describe('REST paths', () => {
  it.each([
    [Resources.ConfigMap, 'ns', 'a', undefined, '/api/v1/namespaces/ns/configmaps/a'],
    [Resources.Deployment, undefined, undefined, undefined, '/apis/apps/v1/deployments'],
    [Resources.Node, 'ignored', 'n1', undefined, '/api/v1/nodes/n1'],
    [
      Resources.Lease,
      'kube-system',
      'l',
      'status',
      '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l/status',
    ],
  ])('%s', (r, ns, name, sub, want) => {
    expect(resourcePath(r, ns, name, sub)).toBe(want);
  });

  it.each([
    ['/api/v1/namespaces/ns/configmaps/a', 'configmaps'],
    ['/api/v1/nodes', 'nodes'],
    ['/apis/coordination.k8s.io/v1/namespaces/x/leases/op', 'leases'],
    ['/apis/pushgate.dev/v1alpha1/namespaces/x/pushgateways/y/status', 'pushgateways'],
    ['/apis/apps/v1/deployments?watch=true', 'deployments'],
    ['/api/v1/namespaces', 'namespaces'],
    ['/api/v1/namespaces/x', 'namespaces'],
  ])('resourceOfPath(%s) = %s', (path, want) => {
    expect(resourceOfPath(path)).toBe(want);
  });

  it('finds the resource of a manifest, and refuses unknown kinds', () => {
    expect(resourceOf({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler' })).toBe(
      Resources.HorizontalPodAutoscaler,
    );
    expect(() => resourceOf({ apiVersion: 'v1', kind: 'Banana' })).toThrow(/v1 Banana/);
  });

  it('splits keys', () => {
    expect(splitKey('ns/name')).toEqual({ namespace: 'ns', name: 'name' });
    expect(splitKey('cluster-scoped')).toEqual({ namespace: undefined, name: 'cluster-scoped' });
  });
});
