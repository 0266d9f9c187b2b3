import { randomUUID } from 'node:crypto';
import {
  publishCampaign,
  readCampaignProgress,
  type CampaignPlan,
  type CampaignProgress,
} from '../../common/campaign/plan.js';
import { indexDevice } from '../../common/redis/app-index.js';
import type { PgRedis } from '../../common/redis/connection.js';
import type { RedisKeys } from '../../common/redis/keys.js';
import { APP, startPushgateProcess, type PushgateProcess } from './gateway.js';

/**
 * Helpers for the campaign dispatcher's tests and benchmark: real `pushgate dispatcher`
 * processes, devices registered in the tag index without a connection (offline), plans
 * published the way the TagCampaign controller publishes them (publishCampaign).
 */
export interface DispatcherProcess extends PushgateProcess {
  kill(signal: NodeJS.Signals): void;
}

export async function startDispatcherProcess(opts: {
  redisUrl: string;
  prefix: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}): Promise<DispatcherProcess> {
  const p = await startPushgateProcess(
    'dispatcher',
    ['--redis-url', opts.redisUrl, '--key-prefix', opts.prefix, ...(opts.args ?? [])],
    opts.env,
  );
  return { ...p, kill: (signal) => void p.proc.kill(signal) };
}

export async function stopDispatcher(d: DispatcherProcess | undefined): Promise<void> {
  if (!d || d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  d.kill('SIGKILL');
  await d.exited;
}

/** Registers devices with tags in the app's indexes, as a hello would, without connecting them. */
export async function registerDevices(
  redis: PgRedis,
  keys: RedisKeys,
  devices: { device: string; tags: string[] }[],
  app = APP,
  concurrency = 200,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < devices.length) {
        const d = devices[next++]!;
        await indexDevice(redis, keys, app, d.device, { tags: d.tags, alias: null });
      }
    }),
  );
}

export function campaignPlan(overrides: Partial<CampaignPlan> = {}): CampaignPlan {
  const id = overrides.id ?? randomUUID();
  return {
    id,
    name: `default/campaign-${id.slice(0, 8)}`,
    generation: 1,
    app: APP,
    target: { allDevices: false, allOf: ['news'], anyOf: [], noneOf: [] },
    push: { data: { title: 'hello' }, ttlSeconds: 3600, priority: 'normal' },
    rate: { perSecond: 200, burst: 20 },
    startAt: 0,
    state: 'run',
    dryRun: false,
    ...overrides,
  };
}

export { publishCampaign };

export async function untilProgress(
  redis: PgRedis,
  keys: RedisKeys,
  id: string,
  cond: (p: CampaignProgress) => boolean,
  timeoutMs: number,
  what: string,
): Promise<CampaignProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = await readCampaignProgress(redis, keys, id);
    if (cond(p)) return p;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; progress ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Devices whose inbox holds message `id` (one ZSCORE per device, pipelined). */
export async function devicesHolding(
  redis: PgRedis,
  keys: RedisKeys,
  devices: string[],
  id: string,
  app = APP,
): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < devices.length; i += 2000) {
    const part = devices.slice(i, i + 2000);
    const p = redis.pipeline();
    for (const d of part) p.zscore(keys.deviceInbox(app, d), id);
    const res = (await p.exec()) ?? [];
    res.forEach(([, v], j) => {
      if (v !== null && v !== undefined) out.add(part[j]!);
    });
  }
  return out;
}
