import { isDeepStrictEqual } from 'node:util';
import type { KubeObject } from './kube.js';

/**
 * True when an update of `next` over `prev` changed only what controllers report (status), so
 * whoever reacts need not re-apply desired state: metadata.generation is the API server's
 * count of spec changes, and labels, annotations, owners and deletion are compared directly.
 * Kinds without a generation (Services, ConfigMaps, RBAC...) are never "status only": any
 * update of them may be a hand edit to undo.
 */
export function onlyStatusChanged(prev: KubeObject | undefined, next: KubeObject): boolean {
  const a = prev?.metadata;
  const b = next.metadata;
  if (!a || !b || a.generation === undefined || a.generation !== b.generation) return false;
  return (
    a.deletionTimestamp === b.deletionTimestamp &&
    isDeepStrictEqual(a.labels ?? {}, b.labels ?? {}) &&
    isDeepStrictEqual(a.annotations ?? {}, b.annotations ?? {}) &&
    isDeepStrictEqual(a.ownerReferences ?? [], b.ownerReferences ?? [])
  );
}
