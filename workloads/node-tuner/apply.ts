import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  limitSatisfied,
  normalizeValue,
  parseNofileLimits,
  satisfies,
  sysctlPathParts,
  type DesiredLimit,
  type DesiredSysctl,
  type LimitOutcome,
  type SysctlOutcome,
} from './policy.js';

const execFileAsync = promisify(execFile);

const sysctlPath = (root: string, key: string) => path.join(root, ...sysctlPathParts(key));

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/**
 * Brings one sysctl to its desired value under `root` (normally /proc/sys, which shows the
 * network namespace of this process for net.*): read, write only when it does not satisfy,
 * then read back — the kernel may clamp or refuse a value without an error on write.
 */
export async function applySysctl(root: string, want: DesiredSysctl): Promise<SysctlOutcome> {
  const file = sysctlPath(root, want.key);
  let before: string;
  try {
    before = normalizeValue(await readFile(file, 'utf8'));
  } catch (err) {
    if (errno(err) === 'ENOENT') return { key: want.key, state: 'missing' };
    return { key: want.key, state: 'failed', reason: `read: ${(err as Error).message}` };
  }
  if (satisfies(want, before)) return { key: want.key, state: 'ok', value: before };
  try {
    await writeFile(file, `${want.value}\n`);
  } catch (err) {
    return { key: want.key, state: 'failed', reason: `write ${want.value}: ${(err as Error).message}` };
  }
  const after = normalizeValue(await readFile(file, 'utf8'));
  if (!satisfies(want, after)) {
    return { key: want.key, state: 'failed', reason: `wrote ${want.value} but the kernel reports ${after}` };
  }
  return { key: want.key, state: 'applied', value: after, previous: before };
}

/** Pids whose /proc/<pid>/comm is one of `names`. */
export async function findProcesses(
  procRoot: string,
  names: string[],
): Promise<{ pid: number; name: string }[]> {
  const wanted = new Set(names);
  const found: { pid: number; name: string }[] = [];
  for (const entry of await readdir(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = (await readFile(path.join(procRoot, entry, 'comm'), 'utf8')).trim();
      if (wanted.has(comm)) found.push({ pid: Number(entry), name: comm });
    } catch {
      // The process exited between readdir and read.
    }
  }
  return found;
}

async function readNofile(procRoot: string, pid: number) {
  return parseNofileLimits(await readFile(path.join(procRoot, String(pid), 'limits'), 'utf8'));
}

/**
 * Raises RLIMIT_NOFILE of every process named in `want` with prlimit(1) (util-linux; Node has
 * no setrlimit), then reads /proc/<pid>/limits back. Children forked afterwards inherit it —
 * which is the point of raising the container runtime's limit.
 */
export async function applyLimit(procRoot: string, want: DesiredLimit): Promise<LimitOutcome[]> {
  const processes = await findProcesses(procRoot, want.processNames);
  const outcomes: LimitOutcome[] = [];
  for (const name of want.processNames) {
    if (!processes.some((p) => p.name === name)) {
      outcomes.push({ target: `${want.resource}:${name}`, state: 'missing' });
    }
  }
  for (const { pid, name } of processes) {
    const target = `${want.resource}:${name}(${pid})`;
    try {
      const before = await readNofile(procRoot, pid);
      if (!before) throw new Error('no Max open files row');
      if (limitSatisfied(want.value, before.soft, before.hard)) {
        outcomes.push({ target, state: 'ok', soft: before.soft, hard: before.hard });
        continue;
      }
      const soft = Math.max(want.value, before.soft);
      const hard = Math.max(want.value, before.hard);
      const fmt = (n: number) => (n === Infinity ? 'unlimited' : String(n));
      await execFileAsync('prlimit', ['--pid', String(pid), `--nofile=${fmt(soft)}:${fmt(hard)}`]);
      const after = await readNofile(procRoot, pid);
      if (!after || !limitSatisfied(want.value, after.soft, after.hard)) {
        throw new Error(`set ${want.value} but /proc/${pid}/limits reports ${after?.soft}:${after?.hard}`);
      }
      outcomes.push({
        target,
        state: 'applied',
        soft: after.soft,
        hard: after.hard,
        previous: `${before.soft}:${before.hard}`,
      });
    } catch (err) {
      const message = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
      outcomes.push({ target, state: 'failed', reason: message });
    }
  }
  return outcomes;
}
