import { isDeepStrictEqual } from 'node:util';
import type { KubeClient, KubeObject, ResourceType } from './kube.js';

/**
 * Writes `.status` through the /status subresource with server-side apply, and only when it
 * differs from what the object already shows: an idle operator makes no writes (a status
 * write bumps resourceVersion, which would come back as a watch event: a hot loop).
 * Returns true when it wrote.
 */
export async function writeStatus(
  client: KubeClient,
  resource: ResourceType,
  obj: KubeObject,
  status: Record<string, unknown>,
  fieldManager: string,
): Promise<boolean> {
  const current = (obj as { status?: unknown }).status ?? {};
  if (isDeepStrictEqual(normalize(current), normalize(status))) return false;
  await client.apply(
    resource,
    { metadata: { name: obj.metadata?.name, namespace: obj.metadata?.namespace }, status },
    { fieldManager, subresource: 'status' },
  );
  return true;
}

/** Drops undefined members so `{a: undefined}` equals `{}` (JSON round-trips lose them anyway). */
function normalize(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v ?? {}));
}
