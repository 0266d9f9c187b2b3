import { describe, expect, it } from 'vitest';
import { onlyStatusChanged } from './changes.js';
import type { KubeObject } from './kube.js';

const obj = (meta: Record<string, unknown>, status: unknown = {}): KubeObject => ({
  metadata: { name: 'x', generation: 2, labels: { a: '1' }, annotations: { n: '1' }, ...meta },
  status,
});

describe('onlyStatusChanged', () => {
  it.each([
    ['status moved, nothing else', obj({}, { ready: 1 }), obj({}, { ready: 2 }), true],
    ['spec changed (generation bumped)', obj({}), obj({ generation: 3 }), false],
    ['label edited by hand', obj({}), obj({ labels: { a: '2' } }), false],
    ['annotation added', obj({}), obj({ annotations: { n: '1', m: '2' } }), false],
    ['owner reference removed', obj({ ownerReferences: [{ uid: 'u' }] }), obj({}), false],
    ['being deleted', obj({}), obj({ deletionTimestamp: '2026-01-01T00:00:00Z' }), false],
    [
      'kind without generation (Service)',
      obj({ generation: undefined }),
      obj({ generation: undefined }),
      false,
    ],
    ['no previous object', undefined, obj({}), false],
  ])('%s -> %s', (_what, prev, next, want) => {
    expect(onlyStatusChanged(prev, next)).toBe(want);
  });
});
