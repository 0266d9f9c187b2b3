import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const script = (name: string) => path.join(repoRoot, 'hack', name);

export interface StartedCluster {
  name: string;
  kubeconfig: string;
  /** Stop one component (e.g. 'kube-apiserver') and start it again later, same ports and data. */
  stop(component: ClusterComponent): Promise<void>;
  start(component: ClusterComponent): Promise<void>;
  down(): Promise<void>;
}
export type ClusterComponent =
  'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok';

export interface StartedRedis {
  url: string;
  down(): Promise<void>;
}

/** Where hack/build-binaries puts kube-apiserver, kubectl, etcd, kwok and helm. */
export function binDir(): string {
  const home = process.env.PUSHGATE_CACHE ?? path.join(process.env.HOME ?? '/root', '.cache/pushgate');
  return path.join(home, 'bin/current');
}

/** Env for child processes that need kubectl/helm on PATH. */
export function envWithBins(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${binDir()}:${process.env.PATH ?? ''}`, ...extra };
}

const lastLine = (out: string) => out.trim().split('\n').pop()!.trim();

/** Starts a whole local control plane named `name` (hack/local-cluster up). */
export async function startCluster(name: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<StartedCluster> {
  const env = { ...process.env, ...extraEnv };
  const cluster = (...args: string[]) =>
    run(script('local-cluster'), [...args, '--name', name], { env, maxBuffer: 16 << 20 });
  const { stdout } = await cluster('up');
  const kubeconfig = lastLine(stdout);
  if (!existsSync(kubeconfig)) throw new Error(`local-cluster up printed no kubeconfig: ${stdout}`);
  return {
    name,
    kubeconfig,
    stop: async (c) => void (await cluster('stop', c)),
    start: async (c) => void (await cluster('start', c)),
    down: async () => void (await cluster('down')),
  };
}

/** Starts a real redis-server on a free loopback port (hack/local-redis up). */
export async function startRedis(name: string): Promise<StartedRedis> {
  const redis = (...args: string[]) => run(script('local-redis'), [...args, '--name', name]);
  const { stdout } = await redis('up');
  return { url: lastLine(stdout), down: async () => void (await redis('down')) };
}

/** kubectl from the built binaries, against `kubeconfig`; resolves with stdout. */
export async function kubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const child = run(path.join(binDir(), 'kubectl'), ['--kubeconfig', kubeconfig, ...args], {
    env: envWithBins(),
    maxBuffer: 64 << 20,
  });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  const { stdout } = await child;
  return stdout;
}
