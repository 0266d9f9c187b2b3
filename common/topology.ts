import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The well-known Node labels (kubernetes.io/docs/reference/labels-annotations-taints). */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const REGION_LABEL = 'topology.kubernetes.io/region';

export interface NodeTopology {
  zone?: string;
  region?: string;
}

/** A Node's region and zone from its labels (absent labels stay absent). */
export function topologyOf(labels: Record<string, string> | undefined): NodeTopology {
  const zone = labels?.[ZONE_LABEL];
  const region = labels?.[REGION_LABEL];
  return { ...(zone ? { zone } : {}), ...(region ? { region } : {}) };
}

/** Writes one file per known value (`zone`, `region`) into `dir`, for the pod's other containers. */
export function writeTopology(dir: string, t: NodeTopology): void {
  mkdirSync(dir, { recursive: true });
  for (const [key, value] of Object.entries(t)) writeFileSync(path.join(dir, key), `${value}\n`);
}

/**
 * The value a program uses for its zone: the one in `file` (written at pod start by the
 * node-topology init container) when that file exists and is not empty, else `fallback`.
 */
export function zoneFromFile(file: string | undefined, fallback: string): string {
  if (!file) return fallback;
  try {
    return readFileSync(file, 'utf8').trim() || fallback;
  } catch {
    return fallback;
  }
}
