import type { KubeObject } from '../../runtime/kube.js';

/**
 * What the API server would refuse in the objects built from a PushGateway, found before
 * anything is applied (a pure function: desired objects in, problems out). It covers what
 * the CRD cannot see because it only exists once the builders have combined the spec with
 * the operator's own parts: two entries with one key in a list the API server merges by key
 * (server-side apply answers those with a 500 "duplicate entries for key"), names and label
 * values longer than the API server takes. Each problem says what to change in the spec.
 */

interface ListRule {
  /** Path of the list inside a pod spec. */
  list: 'containers' | 'volumes';
  key: (item: Record<string, unknown>) => string;
  what: string;
  hint: string;
}

const POD_LISTS: ListRule[] = [
  {
    list: 'containers',
    key: (c) => `name "${String(c.name)}"`,
    what: 'containers',
    hint: 'container names must be unique in the pod: rename the spec.sidecars entry that reuses a name of the containers the operator adds (gateway, sidecar)',
  },
  {
    list: 'volumes',
    key: (v) => `name "${String(v.name)}"`,
    what: 'volumes',
    hint: 'volume names must be unique in the pod',
  },
];

const CONTAINER_LISTS: { list: string; key: (item: Record<string, unknown>) => string; hint: string }[] = [
  {
    list: 'ports',
    key: (p) => `containerPort ${String(p.containerPort)}/${String(p.protocol ?? 'TCP')}`,
    hint: 'a port may be declared once per container: check spec.ports and the sidecar ports',
  },
  { list: 'env', key: (e) => `name "${String(e.name)}"`, hint: 'environment variable names must be unique' },
  {
    list: 'volumeMounts',
    key: (m) => `mountPath "${String(m.mountPath)}"`,
    hint: 'a path may be mounted once per container',
  },
];

const asList = (v: unknown): Record<string, unknown>[] =>
  Array.isArray(v) ? (v as Record<string, unknown>[]) : [];

function duplicates(items: Record<string, unknown>[], key: (i: Record<string, unknown>) => string): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const i of items) {
    const k = key(i);
    if (seen.has(k)) dup.add(k);
    seen.add(k);
  }
  return [...dup];
}

/** DNS-1035 label: what a Service name must be. */
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export function findUnbuildable(desired: readonly KubeObject[]): string[] {
  const problems: string[] = [];
  // Two children of one kind and name would overwrite each other (a region named like another
  // child, e.g. the dispatcher's Deployment <gateway>-dispatcher).
  for (const d of duplicates(desired as Record<string, unknown>[], (o) => {
    const k = o as KubeObject;
    return `${k.kind} ${k.metadata?.namespace ?? ''}/${k.metadata?.name}`;
  }))
    problems.push(
      `two objects would be ${d.replace(/ [^ ]*\//, ' ')}; a region may not be named dispatcher (the campaign dispatcher's Deployment)`,
    );
  for (const obj of desired) {
    const id = `${obj.kind} ${obj.metadata?.name}`;
    const name = obj.metadata?.name ?? '';
    if (obj.kind === 'Service' && (name.length > 63 || !DNS_LABEL.test(name)))
      problems.push(
        `${id}: a Service name must be a DNS label of at most 63 characters (it is ${name.length}); shorten the PushGateway name or the region name`,
      );
    for (const [k, v] of Object.entries(obj.metadata?.labels ?? {})) {
      if (v.length > 63)
        problems.push(
          `${id}: label ${k} would be ${v.length} characters, over the 63 the API server takes; shorten the PushGateway name`,
        );
    }
    const podSpec = (obj.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template
      ?.spec;
    if (podSpec) {
      for (const rule of POD_LISTS) {
        const items =
          rule.list === 'containers'
            ? [...asList(podSpec.initContainers), ...asList(podSpec.containers)]
            : asList(podSpec[rule.list]);
        for (const d of duplicates(items, rule.key))
          problems.push(`${id}: two ${rule.what} with ${d} in the pod; ${rule.hint}`);
      }
      for (const c of [...asList(podSpec.initContainers), ...asList(podSpec.containers)]) {
        for (const rule of CONTAINER_LISTS) {
          for (const d of duplicates(asList(c[rule.list]), rule.key))
            problems.push(
              `${id}: container "${String(c.name)}" has two ${rule.list} with ${d}; ${rule.hint}`,
            );
        }
      }
    }
    if (obj.kind === 'Service') {
      const ports = asList((obj.spec as { ports?: unknown } | undefined)?.ports);
      for (const d of duplicates(ports, (p) => `port ${String(p.port)}/${String(p.protocol ?? 'TCP')}`))
        problems.push(`${id}: two ports with ${d}`);
    }
  }
  return problems;
}
