/**
 * What the node tuner wants, as pure data and pure decisions: the desired sysctls (defaults
 * for a node holding hundreds of thousands of long connections, plus overrides), how a value
 * read back from /proc/sys compares with what is wanted, and what the Node report says.
 * Everything that touches /proc, processes or the API server lives beside this file.
 */

/**
 * `exact`: the value must equal the desired one. `atLeast`: a numeric floor; a node already
 * tuned higher (by its image or another tool) is left alone, never lowered.
 */
export type SysctlMode = 'exact' | 'atLeast';

export interface DesiredSysctl {
  key: string;
  value: string;
  mode: SysctlMode;
  /** A default the tuner brings (not asked for): if the kernel lacks it, that is not a failure. */
  isDefault: boolean;
}

/**
 * Which sysctls the tuner manages. `host`: everything (the DaemonSet on the node's own
 * namespaces). `network-namespace`: only `net.*`, for running inside one pod's network
 * namespace — net.* sysctls are per network namespace, so a gateway pod does not inherit the
 * node's somaxconn; the fs.* ones are global to the kernel and must not be touched from there.
 */
export type TuningScope = 'host' | 'network-namespace';

/**
 * Defaults for a gateway node (JPush/vivo-style long-connection hosts): deep accept and SYN
 * queues for reconnect bursts, the whole ephemeral port range for outbound connections to
 * Redis and peers, TIME_WAIT reuse for outbound churn, and file limits well above the
 * 1M+ sockets a node may hold.
 */
export const DEFAULT_SYSCTLS: readonly Omit<DesiredSysctl, 'isDefault'>[] = [
  { key: 'net.core.somaxconn', value: '65535', mode: 'atLeast' },
  { key: 'net.ipv4.tcp_max_syn_backlog', value: '65535', mode: 'atLeast' },
  { key: 'net.ipv4.ip_local_port_range', value: '1024 65535', mode: 'exact' },
  { key: 'net.ipv4.tcp_tw_reuse', value: '1', mode: 'exact' },
  { key: 'net.core.netdev_max_backlog', value: '16384', mode: 'atLeast' },
  { key: 'fs.file-max', value: '4194304', mode: 'atLeast' },
  { key: 'fs.nr_open', value: '2097152', mode: 'atLeast' },
];

/**
 * Sysctl names in either spelling sysctl(8) takes: dots (`net.core.somaxconn`) or slashes
 * (`net/ipv4/conf/eth0.100/rp_filter`, where a component may hold a dot). Components are never
 * `.` or `..`, so a key never escapes the sysctl root.
 */
const SYSCTL_KEY_DOTS = /^[a-z0-9_]+(\.[a-z0-9_-]+)+$/;
const SYSCTL_KEY_SLASHES = /^[a-z0-9_]+(\/[a-z0-9_.-]+)+$/;
const isSysctlKey = (key: string) =>
  SYSCTL_KEY_DOTS.test(key) ||
  (SYSCTL_KEY_SLASHES.test(key) && !key.split('/').some((c) => c === '.' || c === '..'));

/** The path components of a sysctl under /proc/sys. */
export function sysctlPathParts(key: string): string[] {
  return key.includes('/') ? key.split('/') : key.split('.');
}

export class PolicyError extends Error {
  override name = 'PolicyError';
}

/**
 * Parses one override: `key=value` (exact) or `key>=value` (numeric floor). Values may hold
 * spaces (`net.ipv4.ip_local_port_range=1024 65535`).
 */
export function parseSysctlOverride(text: string): Omit<DesiredSysctl, 'isDefault'> {
  const m = /^\s*([^=>\s]+)\s*(>=|=)\s*(.*?)\s*$/.exec(text);
  if (!m) throw new PolicyError(`sysctl override '${text}' must look like key=value or key>=value`);
  const [, key, op, value] = m as unknown as [string, string, string, string];
  if (!isSysctlKey(key)) throw new PolicyError(`sysctl override '${text}': '${key}' is not a sysctl name`);
  if (value === '' || /[\n\r]/.test(value))
    throw new PolicyError(`sysctl override '${text}': empty or multi-line value`);
  const mode: SysctlMode = op === '>=' ? 'atLeast' : 'exact';
  if (mode === 'atLeast' && !/^\d+$/.test(value)) {
    throw new PolicyError(`sysctl override '${text}': >= needs a whole number`);
  }
  return { key, value: normalizeValue(value), mode };
}

export interface DesiredSysctlsInput {
  useDefaults: boolean;
  overrides: string[];
  skip: string[];
  scope: TuningScope;
}

/** Defaults, then overrides (an override replaces a default of the same key), minus skips and out-of-scope keys. */
export function desiredSysctls({
  useDefaults,
  overrides,
  skip,
  scope,
}: DesiredSysctlsInput): DesiredSysctl[] {
  const byKey = new Map<string, DesiredSysctl>();
  if (useDefaults) for (const d of DEFAULT_SYSCTLS) byKey.set(d.key, { ...d, isDefault: true });
  for (const text of overrides) {
    const o = parseSysctlOverride(text);
    byKey.set(o.key, { ...o, isDefault: false });
  }
  for (const key of skip) byKey.delete(key);
  const all = [...byKey.values()];
  if (scope === 'host') return all;
  const outOfScope = all.filter((d) => !d.key.startsWith('net.') && !d.isDefault);
  if (outOfScope.length > 0) {
    throw new PolicyError(
      `scope network-namespace manages only net.* sysctls; ${outOfScope.map((d) => d.key).join(', ')} are global to the kernel`,
    );
  }
  return all.filter((d) => d.key.startsWith('net.'));
}

/** /proc/sys separates fields with tabs; overrides are typed with spaces. Compare field by field. */
export function normalizeValue(raw: string): string {
  return raw.trim().split(/\s+/).join(' ');
}

/** Whether `current` (read from /proc/sys) satisfies `want`. */
export function satisfies(want: Pick<DesiredSysctl, 'value' | 'mode'>, current: string): boolean {
  const have = normalizeValue(current);
  if (want.mode === 'exact') return have === want.value;
  if (!/^\d+$/.test(have)) return false;
  return BigInt(have) >= BigInt(want.value);
}

/** What one check of one sysctl found and did. */
export type SysctlOutcome =
  | { key: string; state: 'ok'; value: string }
  | { key: string; state: 'applied'; value: string; previous: string }
  | { key: string; state: 'missing' }
  | { key: string; state: 'failed'; reason: string };

/** Process resource limits the tuner raises, such as RLIMIT_NOFILE of the container runtime. */
export interface DesiredLimit {
  resource: 'nofile';
  /** Soft and hard limit both; raised only (a process already above it is left alone). */
  value: number;
  /** Process names (comm, as in /proc/<pid>/comm) whose limit is raised. */
  processNames: string[];
}

export type LimitOutcome =
  | { target: string; state: 'ok'; soft: number; hard: number }
  /** No process of that name runs now (e.g. no gateway scheduled here yet): noted, not a failure. */
  | { target: string; state: 'missing' }
  | { target: string; state: 'applied'; soft: number; hard: number; previous: string }
  | { target: string; state: 'failed'; reason: string };

/** A resource limit is satisfied when both soft and hard are at or above the floor. */
export function limitSatisfied(want: number, soft: number, hard: number): boolean {
  return soft >= want && hard >= want;
}

/** The annotation the controller reads (JSON) and the label it can select on. */
export const NODE_TUNING_ANNOTATION = 'pushgate.dev/node-tuning';
export const NODE_TUNED_LABEL = 'pushgate.dev/node-tuned';

export interface TuningReport {
  scope: TuningScope;
  /** key → value now in force (whether this pass wrote it or found it so). */
  applied: Record<string, string>;
  /** key → why it could not be brought to the desired value. */
  failed: Record<string, string>;
  /**
   * Defaults this kernel/namespace does not have (e.g. net.core.netdev_max_backlog outside the
   * initial namespace), and limit targets with no process running now (`nofile:<name>`).
   */
  missing: string[];
  limits: Record<string, string>;
  /** Corrections made since the tuner started (first pass excluded): how often the node drifted. */
  driftCorrections: number;
  verifiedAt: string;
}

/**
 * Folds one pass's outcomes into the report. A missing sysctl the operator asked for by name
 * is a failure (it was given and cannot be applied); a missing default is only noted.
 */
export function buildReport(
  scope: TuningScope,
  desired: DesiredSysctl[],
  sysctls: SysctlOutcome[],
  limits: LimitOutcome[],
  driftCorrections: number,
  now: Date,
): TuningReport {
  const isDefault = new Map(desired.map((d) => [d.key, d.isDefault]));
  const report: TuningReport = {
    scope,
    applied: {},
    failed: {},
    missing: [],
    limits: {},
    driftCorrections,
    verifiedAt: now.toISOString(),
  };
  for (const o of sysctls) {
    if (o.state === 'ok' || o.state === 'applied') report.applied[o.key] = o.value;
    else if (o.state === 'failed') report.failed[o.key] = o.reason;
    else if (isDefault.get(o.key)) report.missing.push(o.key);
    else report.failed[o.key] = 'no such sysctl in this kernel or namespace';
  }
  for (const l of limits) {
    if (l.state === 'failed') report.failed[l.target] = l.reason;
    else if (l.state === 'missing') report.missing.push(l.target);
    else report.limits[l.target] = `${l.soft}:${l.hard}`;
  }
  return report;
}

export function isTuned(report: TuningReport): boolean {
  return Object.keys(report.failed).length === 0;
}

/** The merge patch that puts the report on the Node. */
export function nodeReportPatch(report: TuningReport): {
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
} {
  return {
    metadata: {
      labels: { [NODE_TUNED_LABEL]: String(isTuned(report)) },
      annotations: { [NODE_TUNING_ANNOTATION]: JSON.stringify(report) },
    },
  };
}

/**
 * Whether a pass must be reported: on any change in what is applied/failed/limits, or when
 * the last report is older than `refreshMs` (so verifiedAt stays fresh without a Node write
 * every pass on every node — 5,000 nodes at one write per pass would load the API server).
 */
export function shouldReport(
  previous: TuningReport | undefined,
  next: TuningReport,
  refreshMs: number,
): boolean {
  if (!previous) return true;
  const essence = (r: TuningReport) =>
    JSON.stringify([r.applied, r.failed, r.missing, r.limits, r.driftCorrections]);
  if (essence(previous) !== essence(next)) return true;
  return Date.parse(next.verifiedAt) - Date.parse(previous.verifiedAt) >= refreshMs;
}

/** Parses the `Max open files` row of /proc/<pid>/limits into soft and hard (unlimited → Infinity). */
export function parseNofileLimits(limitsFile: string): { soft: number; hard: number } | undefined {
  const line = limitsFile.split('\n').find((l) => l.startsWith('Max open files'));
  if (!line) return undefined;
  const m = /^Max open files\s+(\S+)\s+(\S+)/.exec(line);
  if (!m) return undefined;
  const num = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: num(m[1]!), hard: num(m[2]!) };
}
