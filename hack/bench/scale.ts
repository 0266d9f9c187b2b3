/**
 * `npm run bench:scale [-- --connections 100000 --gateways 6 --workers 7]`: issue 15's scale run.
 * Authenticated device connections spread over several gateway processes on one Redis (each
 * process, gateway or client worker, under `ulimit -n`; client source addresses spread over
 * 127.1.x.y), then:
 *   - RSS per connection of each gateway (after - before, forced GC), and live heap per connection;
 *   - one push to every device (a tag all of them carry), accepted by one gateway: time until the
 *     last device has it, and deliveries per second;
 *   - idle CPU with heartbeats: every device pings once per --heartbeat-ms, spread evenly; CPU of
 *     the gateways and redis-server over --idle-seconds.
 * Every loop is bounded in count and time (connect: --connect-timeout-seconds; the push: 120 s).
 * This is a benchmark, not a test: nothing is asserted; report() writes .bench/scale-*.json.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { z } from 'zod';
import { benchRedis } from './redis.js';
import { parseConfig } from '../../common/config.js';
import { APP, SECRET, cpuSecondsOf, memoryOf, redisCpuSeconds, startChild, type Child } from './gateway.js';
import { progress, report, type BenchRow } from './report.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');

const options = {
  connections: { schema: z.number().int().positive().default(100_000), description: 'Devices to connect.' },
  gateways: { schema: z.number().int().positive().default(6), description: 'Gateway processes.' },
  workers: { schema: z.number().int().positive().default(7), description: 'Client worker processes.' },
  sourceAddresses: {
    schema: z.number().int().positive().default(1000),
    description: '127.1.x.y source addresses for clients.',
  },
  heartbeatMs: {
    schema: z.number().int().positive().default(30_000),
    description: 'Heartbeat interval the gateways ask for (and the devices keep).',
  },
  idleSeconds: { schema: z.number().positive().default(30), description: 'Length of the idle CPU window.' },
  connectTimeoutSeconds: {
    schema: z.number().positive().default(600),
    description: 'Give up connecting after this long.',
  },
};

export default async function bench(argv: string[]) {
  const startedAt = new Date();
  const cfg = parseConfig(options, argv);
  const { stdout: ulimit } = await run('bash', ['-c', 'ulimit -n']);
  const files = Number(ulimit.trim()) || 1024;
  const perGateway = Math.ceil(cfg.connections / cfg.gateways);
  const perWorker = Math.ceil(cfg.connections / cfg.workers);
  if (perGateway > files - 500 || perWorker > files - 500)
    throw new Error(
      `${perGateway} connections per gateway / ${perWorker} per worker exceed ulimit -n ${files}: add processes`,
    );
  const benchRedisServer = await benchRedis('bench-scale');
  const redisUrl = benchRedisServer.url;
  await run('redis-cli', ['-u', redisUrl, 'FLUSHALL']);
  const children: Child[] = [];
  try {
    const hb = String(cfg.heartbeatMs);
    const gateways = await Promise.all(
      Array.from({ length: cfg.gateways }, (_, g) =>
        startChild(
          [
            path.join(repoRoot, 'cli/pushgate.ts'),
            'gateway',
            ...['--port', '0', '--host', '127.0.0.1', '--redis-url', redisUrl, '--key-prefix', 'scale'],
            ...['--gateway-id', `scale-${g}`, '--max-connections', '1000000', '--accept-rate', '1000000'],
            ...['--heartbeat-min-ms', hb, '--heartbeat-max-ms', hb, '--heartbeat-initial-ms', hb],
            ...['--hello-timeout-ms', '120000'],
          ],
          /"port":(\d+).*"gateway listening"/,
          {
            PUSHGATE_APPS: `${APP}:${SECRET}`,
            PUSHGATE_LOG_LEVEL: 'info',
            PUSHGATE_REDIS_COMMAND_TIMEOUT_MS: '30000',
          },
        ),
      ),
    );
    children.push(...gateways);
    const workers = await Promise.all(
      Array.from({ length: cfg.workers }, (_, k) =>
        startChild(
          [
            path.join(here, 'gateway.ts'),
            ...[
              '--role',
              'clients',
              String(k),
              String(cfg.workers),
              String(cfg.sourceAddresses),
              'ack-per-read',
            ],
          ],
          /^worker ready (\d+)/,
        ),
      ),
    );
    children.push(...workers);
    await new Promise((r) => setTimeout(r, 2000));
    const before: Awaited<ReturnType<typeof memoryOf>>[] = [];
    for (const g of gateways) before.push(await memoryOf(g));

    // Devices ping from the start, as devices do (a little more often than asked).
    await Promise.all(workers.map((w) => w.request({ type: 'heartbeat', everyMs: cfg.heartbeatMs - 5000 })));
    progress(`connecting ${cfg.connections} devices to ${cfg.gateways} gateways with ${cfg.workers} workers`);
    const held = new Array<number>(cfg.workers).fill(0);
    let failed = 0;
    const t0 = Date.now();
    const timeoutMs = cfg.connectTimeoutSeconds * 1000;
    // One gateway at a time, every worker taking its share of that gateway's range.
    for (const [g, gw] of gateways.entries()) {
      const from = g * perGateway;
      const to = Math.min(cfg.connections, from + perGateway);
      const results = await Promise.all(
        workers.map((w) =>
          w.request<{ connected: number; failed: number }>(
            { type: 'connect', mode: 'gateway', url: `ws://127.0.0.1:${gw.port}/v1/connect`, from, to },
            Math.max(1000, timeoutMs - (Date.now() - t0)),
          ),
        ),
      );
      results.forEach((r, k) => (held[k]! += r.connected));
      failed += results.reduce((s, r) => s + r.failed, 0);
      progress(`gateway ${g}: ${to - from} asked, ${results.reduce((s, r) => s + r.connected, 0)} connected`);
    }
    const connectSeconds = (Date.now() - t0) / 1000;
    const total = held.reduce((a, b) => a + b, 0);
    progress(`${total} connected (${failed} failed) in ${connectSeconds.toFixed(1)} s`);
    await new Promise((r) => setTimeout(r, 3000));
    const after: Awaited<ReturnType<typeof memoryOf>>[] = [];
    for (const g of gateways) after.push(await memoryOf(g));
    const conns = Math.max(1, total / cfg.gateways);
    const rssPerConn = after.map((m, g) => (m.rss - before[g]!.rss) / conns);
    const heapPerConn = after.map(
      (m, g) => (m.heapUsed + m.external - before[g]!.heapUsed - before[g]!.external) / conns,
    );
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

    // One push to every device.
    await Promise.all(workers.map((w, k) => w.request({ type: 'expect', count: held[k] })));
    const p0 = Date.now();
    const res = await fetch(`http://127.0.0.1:${gateways[0]!.port}/v1/apps/${APP}/push`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`${APP}:${SECRET}`).toString('base64')}`,
      },
      body: JSON.stringify({ to: { tag: 'fan' }, data: { text: 'x'.repeat(1024) } }),
    });
    const accepted = (await res.json()) as { recipients?: number };
    const acceptedMs = Date.now() - p0;
    let done: { received: number; reachedAt: number }[] = [];
    while (Date.now() - p0 < 120_000) {
      done = await Promise.all(
        workers.map((w) => w.request<{ received: number; reachedAt: number }>({ type: 'progress' })),
      );
      if (done.every((d) => d.reachedAt > 0)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const delivered = done.reduce((s, d) => s + d.received, 0);
    const pushMs = Math.max(...done.map((d) => d.reachedAt || Date.now())) - p0;
    progress(
      `push to all: ${accepted.recipients} recipients, answered in ${acceptedMs} ms, ${delivered} delivered in ${pushMs} ms`,
    );

    // Idle with heartbeats (the devices have pinged since they connected).
    const cpu = async () => ({
      gw: await Promise.all(gateways.map(cpuSecondsOf)),
      redis: await redisCpuSeconds(redisUrl),
    });
    const c0 = await cpu();
    const i0 = Date.now();
    await new Promise((r) => setTimeout(r, cfg.idleSeconds * 1000));
    const c1 = await cpu();
    const idleS = (Date.now() - i0) / 1000;
    const gwCpu = c1.gw.reduce((s, v, g) => s + v - c0.gw[g]!, 0) / idleS;
    const redisCpu = (c1.redis - c0.redis) / idleS;
    await Promise.all(workers.map((w) => w.request({ type: 'heartbeat', everyMs: 0 })));

    const rows: BenchRow[] = [
      {
        metric: 'authenticated connections held',
        unit: 'conn',
        value: total,
        note: `${failed} failed; ${cfg.gateways} gateways, ${cfg.workers} client workers`,
      },
      { metric: 'connects per second (all gateways)', unit: 'conn/s', value: total / connectSeconds },
      {
        metric: 'RSS per connection (mean over gateways)',
        unit: 'KiB',
        value: mean(rssPerConn) / 1024,
        note: rssPerConn.map((v) => (v / 1024).toFixed(2)).join(' / '),
      },
      {
        metric: 'live heap (heapUsed + external) per connection (mean)',
        unit: 'KiB',
        value: mean(heapPerConn) / 1024,
      },
      {
        metric: 'gateway RSS (mean) with its connections',
        unit: 'MiB',
        value: mean(after.map((m) => m.rss)) / 2 ** 20,
      },
      {
        metric: 'push to all: time until the last device has it',
        unit: 'ms',
        value: pushMs,
        note: `${delivered} delivered of ${accepted.recipients}; API answered in ${acceptedMs} ms`,
      },
      { metric: 'push to all: deliveries per second', unit: 'msg/s', value: delivered / (pushMs / 1000) },
      {
        metric: 'idle CPU with heartbeats, all gateways',
        unit: '% of a core',
        value: gwCpu * 100,
        note: `every device pings every ${((cfg.heartbeatMs - 5000) / 1000).toFixed(0)} s; over ${idleS.toFixed(0)} s`,
      },
      { metric: 'idle CPU with heartbeats, redis-server', unit: '% of a core', value: redisCpu * 100 },
    ];
    report('scale', { ...cfg, fileLimit: files }, rows, startedAt);
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await benchRedisServer.down();
  }
}
