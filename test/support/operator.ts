/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped JSON here */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { KubeClient, isNotFound, type KubeObject } from '../../operator/runtime/kube.js';
import { Resources } from '../../operator/runtime/resources.js';
import { PushGatewayResource } from '../../operator/controllers/pushgateway/names.js';
import { sumSamples } from './prometheus.js';
import { repoRoot } from './stack.js';
import * as k8s from '@kubernetes/client-node';

/**
 * The operator's harness, shared by its integration tests (test/integration/operator-*.test.ts,
 * chart) and `npm run bench:operator`: nothing here needs the test runner.
 */

export function clientFor(kubeconfigPath: string): KubeClient {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return new KubeClient(kc);
}

import { installCRDs } from './crds.js';

/** One CRD installer for every test file (test/support/crds.ts). */
export { installCRDs };

/** The sample users apply (examples/pushgateway.yaml), placed in `namespace` under `name`. */
export function samplePushGateway(
  namespace: string,
  name = 'main',
  patch: (spec: Record<string, any>) => void = () => {},
): KubeObject {
  const raw = YAML.parse(
    readFileSync(path.join(repoRoot, 'examples/pushgateway.yaml'), 'utf8'),
  ) as KubeObject & {
    spec: Record<string, any>;
  };
  raw.metadata = { ...raw.metadata, name, namespace };
  patch(raw.spec);
  return raw;
}

/**
 * The Secrets the sample PushGateway's pods read (spec.redis and spec.apps): without them
 * the operator rightly reports it not Ready (SecretMissing).
 */
export async function createGatewaySecrets(client: KubeClient, namespace: string): Promise<void> {
  await client.apply(
    Resources.Secret,
    { metadata: { name: 'pushgate-redis', namespace }, stringData: { url: 'redis://127.0.0.1:6379' } },
    { fieldManager: 'test' },
  );
  await client.apply(
    Resources.Secret,
    { metadata: { name: 'pushgate-apps', namespace }, stringData: { shop: 'shop-secret-0123456789' } },
    { fieldManager: 'test' },
  );
}

export const applyPushGateway = (client: KubeClient, obj: KubeObject) =>
  client.apply(PushGatewayResource, obj, { fieldManager: 'test' });

export async function getOrUndefined<T extends KubeObject>(
  client: KubeClient,
  r: Parameters<KubeClient['get']>[0],
  ns: string | undefined,
  name: string,
): Promise<T | undefined> {
  try {
    return await client.get<T>(r, ns, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface PushGatewayStatusView {
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason: string; message: string }[];
  regions?: { name: string; replicas: number; readyReplicas: number }[];
  readyRegions?: string;
}

type PushGatewayView = KubeObject & { status?: PushGatewayStatusView };
const getPushGateway = (client: KubeClient, ns: string, name: string) =>
  getOrUndefined<PushGatewayView>(client, PushGatewayResource, ns, name);

export async function pushGatewayStatus(
  client: KubeClient,
  ns: string,
  name: string,
): Promise<PushGatewayStatusView | undefined> {
  return (await getPushGateway(client, ns, name))?.status;
}

/** Ready=True for the PushGateway's current generation. */
export async function isReady(
  client: KubeClient,
  ns: string,
  name: string,
): Promise<PushGatewayStatusView | false> {
  const gw = await getPushGateway(client, ns, name);
  const st = gw?.status;
  const ready = st?.conditions?.find((c) => c.type === 'Ready');
  return st && ready?.status === 'True' && st.observedGeneration === gw?.metadata?.generation ? st : false;
}

export interface OperatorProcess {
  child: ChildProcess;
  pid: number;
  probePort: Promise<number>;
  logs(): string;
  /** Where the process's log is kept (read it when a test fails). */
  logFile: string;
  /** SIGTERM and wait for exit (graceful shutdown). */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

/**
 * Runs `pushgate operator` as a real child process (tsx, no build step), so leader election,
 * signals and restarts are the real thing.
 */
export function startOperator(
  kubeconfig: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  /** A compiled cli/pushgate.js to run instead of the TypeScript source under tsx (for memory figures). */
  compiledCli?: string,
): OperatorProcess {
  const entry = compiledCli ? [compiledCli] : ['--import', 'tsx', path.join(repoRoot, 'cli/pushgate.ts')];
  const child = spawn(
    process.execPath,
    [...entry, 'operator', '--kubeconfig', kubeconfig, '--probe-port', '0', ...args],
    {
      cwd: repoRoot,
      env: { ...process.env, PUSHGATE_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const logDir = path.join(os.tmpdir(), 'pushgate-test-logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `operator-${child.pid}.log`);
  const log = createWriteStream(logFile);
  let resolvePort: (p: number) => void;
  let rejectPort: (err: Error) => void;
  const probePort = new Promise<number>((resolve, reject) => {
    resolvePort = resolve;
    rejectPort = reject;
  });
  probePort.catch(() => undefined); // observed by whoever awaits it
  const onData = (d: Buffer) => {
    out += d.toString();
    log.write(d);
    const m = /"port":(\d+),"msg":"probe and metrics server listening"/.exec(out);
    if (m) resolvePort(Number(m[1]));
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      rejectPort(new Error(`operator exited (code ${code}) before listening:\n${out.slice(-2000)}`));
      r(code);
    }),
  );
  return {
    child,
    pid: child.pid!,
    probePort,
    logs: () => out,
    logFile,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export async function probe(port: number, p: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, body: await res.text() };
}

/** Sum of a metric family from the operator's /metrics, over the samples whose labels pass `filter`. */
export async function metricSum(
  port: number,
  name: string,
  filter: (labels: Record<string, string>) => boolean = () => true,
): Promise<number> {
  const { body } = await probe(port, '/metrics');
  return sumSamples(body, name, filter);
}

/**
 * A namespace where the operator publishes into a test's own Redis key prefix: the CRDs, the
 * `pushgate-redis` Secret pointing at `redisUrl`, the sample PushGateway `main` with
 * spec.redis.keyPrefix = `prefix` (its campaigns and policies go there), and the operator
 * watching the namespace with `args` added.
 */
export async function operatorOnPrefix(
  kubeconfig: string,
  client: KubeClient,
  o: { namespace: string; redisUrl: string; prefix: string; leaseName: string; args?: string[] },
): Promise<OperatorProcess> {
  await installCRDs(kubeconfig);
  await client.apply(
    Resources.Secret,
    { metadata: { name: 'pushgate-redis', namespace: o.namespace }, stringData: { url: o.redisUrl } },
    { fieldManager: 'test' },
  );
  await applyPushGateway(
    client,
    samplePushGateway(o.namespace, 'main', (spec) => (spec.redis = { ...spec.redis, keyPrefix: o.prefix })),
  );
  return startOperator(kubeconfig, [
    ...['--namespace', o.namespace, '--lease-namespace', o.namespace, '--lease-name', o.leaseName],
    ...(o.args ?? []),
  ]);
}
