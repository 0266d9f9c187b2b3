import type { TestProject } from 'vitest/node';
import { startCluster, startRedis, type StartedCluster, type StartedRedis } from './support/stack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
    redisUrl: string;
    binDir: string;
  }
}

/**
 * Starts one real control plane (etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler, kwok with fake nodes) and one real redis-server for the whole run.
 * Set PUSHGATE_TEST_KUBECONFIG and PUSHGATE_TEST_REDIS_URL to reuse ones already running
 * (fast edit-test loops): `eval "$(hack/local-cluster env)"`.
 */
export default async function setup(project: TestProject) {
  let cluster: StartedCluster | undefined;
  let redis: StartedRedis | undefined;
  const reuseKube = process.env.PUSHGATE_TEST_KUBECONFIG;
  const reuseRedis = process.env.PUSHGATE_TEST_REDIS_URL;
  const name = `test-${process.pid}`;
  if (!reuseKube) cluster = await startCluster(name);
  if (!reuseRedis) redis = await startRedis(name);
  const kubeconfig = reuseKube ?? cluster!.kubeconfig;
  const redisUrl = reuseRedis ?? redis!.url;
  process.env.PUSHGATE_TEST_KUBECONFIG = kubeconfig;
  process.env.PUSHGATE_TEST_REDIS_URL = redisUrl;
  project.provide('kubeconfig', kubeconfig);
  project.provide('redisUrl', redisUrl);
  project.provide('binDir', (await import('./support/stack.js')).binDir());
  return async () => {
    await cluster?.down();
    await redis?.down();
  };
}
