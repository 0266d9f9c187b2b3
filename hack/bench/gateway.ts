/**
 * `npm run bench:gateway [-- --sizes 8000 --fanout-devices 8000 --lone-pushes 10 --fanout-pushes 10
 *   --latency-rate 200 --latency-seconds 10] [--only fanout|latency]
 *   [--baseline-tree /tmp/before --baseline-order first|last]`
 *
 * Measures the gateway against a bare `ws` server in the same run (same client load, same
 * machine, separate child processes), in the shape of issue 15's peer comparison:
 *   - lone pushes to every fan-out device one after another, each waited for until the last
 *     device has it (bare ws: one broadcast each), as deliveries per second of their own time;
 *   - a burst of pushes offered at once (bare ws: a send() per frame, and corked per socket);
 *   - p50/p99/max push API -> device latency at a fixed offered load, sent and timed by a prober:
 *     a client process of its own with a few devices (--latency-devices), beside the load's idle
 *     devices, posting over kept-alive node:http connections (bare ws: an HTTP POST naming the
 *     device, answered by one frame);
 *   - connects per second (gateway: upgrade + hello + token check + presence in Redis; bare ws:
 *     the upgrade, and again with a hello answered by a welcome), and CPU per 1000 connects;
 *   - process RSS with no connections, and RSS and live heap (heapUsed + external) per idle
 *     connection at each size, as (after - before) / connections, after a forced GC;
 *   - process RSS with no connections as shipped (compiled, plain node), 2 s after start and at
 *     rest, read from /proc;
 *   - CPU per 1000 deliveries of the gateway, redis-server and the clients, per phase, and the
 *     Redis commands per push (INFO commandstats deltas; commands run by scripts included).
 * Clients run in worker child processes, spread over many 127.x source addresses. Each process
 * can hold at most `ulimit -n` sockets: sizes above it are clamped and the row says so.
 * This is a benchmark, not a test: nothing is asserted; report() writes .bench/gateway-*.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import { loopbackSource } from '../../client/simulator.js';
import { benchRedis } from './redis.js';
import { parseConfig } from '../../common/config.js';
import { MAX_CLIENT_FRAME_BYTES, SUBPROTOCOL } from '../../common/protocol/frames.js';
import { signDeviceToken } from '../../common/protocol/token.js';
import { compileShipped } from './compile.js';
import { progress, report, type BenchRow } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
export const APP = 'bench';
export const SECRET = 'bench-secret-0123456789';

const options = {
  sizes: {
    schema: z.array(z.coerce.number().int().positive()).default([8000]),
    description: 'Connection counts to measure memory at.',
  },
  fanoutDevices: {
    schema: z.number().int().positive().default(8000),
    description: 'Devices in the fan-out phase.',
  },
  fanoutPushes: {
    schema: z.number().int().positive().default(10),
    description: 'Pushes to all fan-out devices offered at once (the burst).',
  },
  lonePushes: {
    schema: z.number().int().positive().default(10),
    description:
      'Lone pushes to all fan-out devices, one after another, each waited for until the last device has it.',
  },
  latencyRate: {
    schema: z.number().positive().default(200),
    description: 'Offered load (pushes/s) in the latency phase.',
  },
  latencySeconds: { schema: z.number().positive().default(10), description: 'Length of the latency phase.' },
  workers: { schema: z.number().int().positive().default(2), description: 'Client worker processes.' },
  sourceAddresses: {
    schema: z.number().int().positive().default(64),
    description: '127.x source addresses for clients.',
  },
  only: {
    schema: z.enum(['all', 'fanout', 'latency']).default('all'),
    description:
      'fanout: connect only the fan-out devices and measure fan-out alone (no memory, latency); latency: hold the fan-out devices and measure latency alone.',
  },
  latencyDevices: {
    schema: z.number().int().positive().default(64),
    description:
      'Devices of the latency prober: a client process of its own, which sends the pushes and times them while the other workers hold the load.',
  },
  latencyClient: {
    schema: z.enum(['prober', 'worker']).default('prober'),
    description:
      'Who times latency: prober (a process of its own with --latency-devices devices) or worker (the first load worker, among its thousands of devices; the old way).',
  },
  ackEach: {
    schema: z.boolean().default(false),
    description:
      'Clients ack every push in its own frame (default: one ack frame per read, as the protocol asks).',
  },
  profile: {
    schema: z.string().default(''),
    description:
      'Write V8 CPU profiles of the gateway, one per phase (connect, lone, burst, latency), to <this>-<phase>.cpuprofile.',
  },
  profileKind: {
    schema: z.enum(['cpu', 'heap']).default('cpu'),
    description:
      'With --profile: cpu (V8 CPU profiles, .cpuprofile) or heap (sampling heap profiles of where allocations come from, .heapprofile).',
  },
  baselineTree: {
    schema: z.string().default(''),
    description:
      'Another checkout (e.g. main before a change, with node_modules): its gateway is measured in the same run, and rows compare this tree with it.',
  },
  tree: {
    schema: z.string().default(''),
    description:
      'The checkout whose gateway is measured (default: this one); with --baseline-tree, to compare two others.',
  },
  baselineOrder: {
    schema: z.enum(['first', 'last']).default('first'),
    description: 'Measure the baseline tree before or after this tree (run both to see the order effect).',
  },
  shipped: {
    schema: z.boolean().default(true),
    description:
      'Also measure RSS with no connections as shipped: the gateway compiled and run by node alone (as the image runs it), beside a bare ws server in plain JavaScript (--no-shipped: skip the compile).',
  },
  gatewayNodeArgs: {
    schema: z.array(z.string()).default([]),
    description: 'Extra node flags for the gateway process (e.g. --prof, --cpu-prof), comma-separated.',
  },
};

// ------------------------------------------------------------------ child processes

export interface Child {
  proc: ChildProcess;
  request<T>(msg: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  port: number;
  stop(): Promise<void>;
}

let requestSeq = 0;
export function startChild(
  args: string[],
  readyPattern: RegExp,
  env: NodeJS.ProcessEnv = {},
  nodeArgs: string[] = [],
  /** false: JavaScript run by node alone (a compiled program), not TypeScript under tsx. */
  tsx = true,
): Promise<Child> {
  const loader = tsx ? ['--import', 'tsx'] : [];
  const proc = spawn(process.execPath, ['--expose-gc', ...nodeArgs, ...loader, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const waiting = new Map<number, (v: unknown) => void>();
  proc.on('message', (m: { rid?: number; type?: string }) => {
    if (m.type === 'pushgate:mem') {
      for (const [, resolve] of waiting) resolve(m);
      waiting.clear();
      return;
    }
    if (m.rid !== undefined) {
      waiting.get(m.rid)?.(m);
      waiting.delete(m.rid);
    }
  });
  const lines: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => lines.push(l));
  return new Promise((resolve, reject) => {
    const t = setTimeout(
      () => {
        proc.kill('SIGKILL'); // a child that never got ready must not outlive the benchmark
        reject(new Error(`child ${args.join(' ')} did not start:\n${lines.slice(-40).join('\n')}`));
      },
      // Generous: a tree tsx has not compiled before (--baseline-tree) starts slowly on a loaded machine.
      120_000,
    );
    proc.on('exit', (code) => reject(new Error(`child exited ${code}:\n${lines.slice(-20).join('\n')}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = readyPattern.exec(line);
      if (!m) {
        // Its logs (pino, on stdout) say why a child that exits never got ready.
        lines.push(line);
        if (lines.length > 200) lines.shift();
        return;
      }
      clearTimeout(t);
      resolve({
        proc,
        port: Number(m[1] ?? 0),
        request: <T>(msg: Record<string, unknown>, timeoutMs = 600_000) =>
          new Promise<T>((res, rej) => {
            const rid = ++requestSeq;
            const timer = setTimeout(
              () => rej(new Error(`child request ${String(msg.type)} timed out`)),
              timeoutMs,
            );
            waiting.set(rid, (v) => {
              clearTimeout(timer);
              res(v as T);
            });
            proc.send({ ...msg, rid });
          }),
        stop: async () => {
          if (proc.exitCode !== null || proc.signalCode !== null) return;
          proc.removeAllListeners('exit');
          const exited = new Promise((r) => proc.once('exit', r));
          proc.kill('SIGKILL');
          await exited;
        },
      });
    });
  });
}

interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
}
/** Median of five samples after a forced GC, 300 ms apart (RSS moves as the allocator settles). */
export async function memoryOf(server: Child): Promise<Mem> {
  const samples: Mem[] = [];
  for (let i = 0; i < 5; i++) {
    // The gateway answers {type:'pushgate:mem'} (gateway/command.ts); the bare server too.
    samples.push(await server.request<Mem>({ type: 'pushgate:mem' }, 30_000));
    await new Promise((r) => setTimeout(r, 300));
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return {
    rss: median(samples.map((m) => m.rss)),
    heapUsed: median(samples.map((m) => m.heapUsed)),
    external: median(samples.map((m) => m.external)),
  };
}

/** CPU seconds used so far by a child (process.cpuUsage over IPC). */
export async function cpuSecondsOf(child: Child): Promise<number> {
  const u = await child.request<{ user: number; system: number }>({ type: 'pushgate:cpu' }, 30_000);
  return (u.user + u.system) / 1e6;
}

/** CPU seconds used so far by redis-server (INFO cpu). */
export async function redisCpuSeconds(redisUrl: string): Promise<number> {
  const { stdout } = await promisify(execFile)('redis-cli', ['-u', redisUrl, 'INFO', 'cpu']);
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(stdout)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** redis-server's calls per command so far (INFO commandstats). */
async function redisCommandCalls(redisUrl: string): Promise<Map<string, number>> {
  const { stdout } = await promisify(execFile)('redis-cli', ['-u', redisUrl, 'INFO', 'commandstats']);
  const calls = new Map<string, number>();
  for (const m of stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return calls;
}

/** "evalsha 1024, publish 1, ..." per push: the commands a fan-out cost Redis. */
function callsPerPush(before: Map<string, number>, after: Map<string, number>, pushes: number): string {
  return [...after]
    .map(([cmd, n]): [string, number] => [cmd, (n - (before.get(cmd) ?? 0)) / pushes])
    .filter(([cmd, n]) => n > 0 && cmd !== 'info')
    .sort((a, b) => b[1] - a[1])
    .map(([cmd, n]) => `${cmd} ${Number(n.toFixed(1))}`)
    .join(', ');
}

interface CpuSample {
  server: number;
  redis: number;
  clients: number;
}
/** CPU ms per 1000 events between two samples (each in CPU seconds). */
function cpuPerThousand(before: CpuSample, after: CpuSample, events: number): CpuSample {
  const per = (k: keyof CpuSample) => ((after[k] - before[k]) * 1000 * 1000) / events;
  return { server: per('server'), redis: per('redis'), clients: per('clients') };
}
async function cpuSample(server: Child, workers: Child[], redisUrl?: string): Promise<CpuSample> {
  const [s, r, ...w] = await Promise.all([
    cpuSecondsOf(server),
    redisUrl ? redisCpuSeconds(redisUrl) : Promise.resolve(0),
    ...workers.map(cpuSecondsOf),
  ]);
  return { server: s!, redis: r!, clients: w.reduce((a, b) => a + b, 0) };
}

// ------------------------------------------------------------------ roles run in children

/** The baseline: a bare ws server with the same socket settings as the gateway. */
async function runBareServer() {
  // The latency baseline: an HTTP POST shaped like the push API's names one device
  // (`dev-<i>`, connected with ?i=<i>), and the server writes one push frame to it.
  const byIndex = new Map<string, WebSocket>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const m = JSON.parse(body) as { to: { device: string }; data: unknown };
      const ws = byIndex.get(m.to.device.slice('dev-'.length));
      const sent = Date.now();
      const id = `${sent.toString(36)}0123456789abcdef`;
      ws?.send(
        JSON.stringify({
          t: 'push',
          seq: 1,
          id,
          exp: sent,
          ttl: 86400,
          priority: 'normal',
          sent,
          data: m.data,
        }),
      );
      res.writeHead(ws ? 202 : 404, { 'content-type': 'application/json' }).end(`{"id":"${id}"}`);
    });
  });
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: MAX_CLIENT_FRAME_BYTES,
    clientTracking: true,
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const tcp = new Map<WebSocket, Duplex>();
  // Acks, in the lone-acked phase only (no listener per connection otherwise, so the memory
  // baseline is a bare server's): parsed and checked, then dropped.
  const onAck = function (this: WebSocket, data: Buffer) {
    const f = JSON.parse(data.toString()) as { t?: string; ids?: unknown };
    if (f.t !== 'ack' || !Array.isArray(f.ids)) this.close(1008, 'only acks are expected');
  };
  // Hellos, in the connect-with-hello phase only: parsed and checked as the gateway checks a
  // frame's shape, then answered with a welcome of the gateway's shape (no token check, no Redis).
  let answerHellos = false;
  let sessions = 0;
  const onHello = function (this: WebSocket, data: Buffer) {
    const f = JSON.parse(data.toString()) as { t?: string; v?: number; token?: unknown; tags?: unknown };
    if (f.t !== 'hello' || typeof f.token !== 'string' || !Array.isArray(f.tags))
      return this.close(1008, 'hello expected');
    this.send(
      JSON.stringify({
        t: 'welcome',
        v: f.v,
        gateway: 'bench-gw',
        session: `bare.${(++sessions).toString(36)}`,
        hb: 600_000,
        tags: f.tags,
        alias: null,
        now: Date.now(),
      }),
    );
  };
  wss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    if (answerHellos) ws.once('message', onHello);
    tcp.set(ws, req.socket);
    const i = new URL(req.url ?? '/', 'http://x').searchParams.get('i');
    if (i !== null) byIndex.set(i, ws);
    ws.once('close', () => {
      tcp.delete(ws);
      if (i !== null && byIndex.get(i) === ws) byIndex.delete(i);
    });
  });
  process.on(
    'message',
    (m: { type: string; rid?: number; count?: number; frame?: string; cork?: boolean; on?: boolean }) => {
      if (m.type === 'pushgate:cpu') process.send?.({ rid: m.rid, ...process.cpuUsage() });
      else if (m.type === 'pushgate:mem') {
        const gc = (globalThis as { gc?: () => void }).gc;
        gc?.();
        gc?.();
        const u = process.memoryUsage();
        process.send?.({ type: 'pushgate:mem', rss: u.rss, heapUsed: u.heapUsed, external: u.external });
      } else if (m.type === 'answer-hellos') {
        answerHellos = m.on === true;
        process.send?.({ rid: m.rid });
      } else if (m.type === 'read-acks') {
        for (const ws of wss.clients) {
          ws.removeListener('message', onAck);
          if (m.on) ws.on('message', onAck);
        }
        process.send?.({ rid: m.rid });
      } else if (m.type === 'broadcast') {
        // cork: the frames of the whole broadcast leave each socket in one write, as the gateway
        // writes the pushes stored together for a device (the stronger baseline).
        if (m.cork) for (const socket of tcp.values()) socket.cork();
        for (let i = 0; i < (m.count ?? 1); i++)
          for (const ws of wss.clients) ws.send(m.frame!.replace('#', String(i)));
        if (m.cork) for (const socket of tcp.values()) socket.uncork();
        process.send?.({ rid: m.rid });
      }
    },
  );
  console.log(`bare ws listening ${(server.address() as { port: number }).port}`);
}

/** A client worker: holds connections, counts pushes, acks them (gateway mode), times latency. */
async function runClientWorker(
  workerIndex: number,
  workerCount: number,
  sourceAddresses: number,
  ackEach: boolean,
) {
  const sockets = new Map<number, WebSocket>();
  let received = 0;
  let target = 0;
  let reachedAt = 0;
  const latencyStart = new Map<number, number>();
  const latencies: number[] = [];
  /** bare-hello: a bare ws connect plus the protocol's hello -> welcome round trip. */
  let mode: 'gateway' | 'bare' | 'bare-hello' = 'gateway';
  /** Bare mode: devices ack as in gateway mode (the bare server reads and parses the acks). */
  let bareAcks = false;
  let pinger: NodeJS.Timeout | undefined;

  // Acks as gateway/PROTOCOL.md asks and client/device-client.ts does: every push that arrived
  // in one read is acknowledged in one frame (or, with --ack-each, one frame per push).
  const unacked = new Map<WebSocket, string[]>();
  const flushAcks = () => {
    for (const [ws, ids] of unacked)
      if (ws.readyState === WebSocket.OPEN) ws.send(`{"t":"ack","ids":${JSON.stringify(ids)}}`);
    unacked.clear();
  };
  const ack = (ws: WebSocket, id: string) => {
    if (ackEach) return ws.send(`{"t":"ack","ids":["${id}"]}`);
    const ids = unacked.get(ws);
    if (ids) return void ids.push(id);
    if (unacked.size === 0) setImmediate(flushAcks);
    unacked.set(ws, [id]);
  };
  const onMessage = function (this: WebSocket, data: Buffer) {
    const f = JSON.parse(data.toString()) as { t?: string; id?: string; data?: { k?: number } };
    if (f.t === 'push') {
      received++;
      if (mode === 'gateway' || bareAcks) ack(this, f.id!);
      const k = f.data?.k;
      if (k !== undefined && latencyStart.has(k)) {
        latencies.push(performance.now() - latencyStart.get(k)!);
        latencyStart.delete(k);
      }
      if (target && received >= target && !reachedAt) reachedAt = Date.now();
    }
  };

  async function connectOne(url: string, i: number, token: string): Promise<boolean> {
    return new Promise((resolve) => {
      const ws = new WebSocket(
        mode === 'gateway' ? url : `${url}/?i=${i}`,
        mode === 'bare' ? undefined : SUBPROTOCOL,
        {
          perMessageDeflate: false,
          localAddress: loopbackSource(i, sourceAddresses),
        },
      );
      const fail = () => resolve(false);
      ws.once('error', fail);
      ws.once('close', fail);
      ws.once('open', () => {
        if (mode === 'bare') {
          sockets.set(i, ws);
          ws.on('message', onMessage);
          return resolve(true);
        }
        ws.send(JSON.stringify({ t: 'hello', v: 1, token, tags: ['fan'] }));
        ws.once('message', (d: Buffer) => {
          if (!d.toString().startsWith('{"t":"welcome"')) return resolve(false);
          sockets.set(i, ws);
          ws.on('message', onMessage);
          resolve(true);
        });
      });
    });
  }

  process.on('message', async (m: Record<string, unknown> & { type: string; rid: number }) => {
    const reply = (extra: Record<string, unknown> = {}) => process.send?.({ rid: m.rid, ...extra });
    if (m.type === 'pushgate:cpu') reply({ ...process.cpuUsage() });
    else if (m.type === 'connect') {
      mode = m.mode as typeof mode;
      const mine: number[] = [];
      for (let i = m.from as number; i < (m.to as number); i++)
        if (i % workerCount === workerIndex) mine.push(i);
      // Tokens are minted before the clock starts: minting is the app backend's work, not
      // part of connecting.
      const tokens = new Map<number, string>();
      if (mode !== 'bare') {
        for (const i of mine)
          tokens.set(i, await signDeviceToken(SECRET, { app: APP, device: `dev-${i}`, ttlSeconds: 3600 }));
      }
      let failed = 0;
      let next = 0;
      const lane = async () => {
        while (next < mine.length) {
          const i = mine[next++]!;
          if (!(await connectOne(m.url as string, i, tokens.get(i) ?? ''))) failed++;
        }
      };
      const started = performance.now();
      await Promise.all(Array.from({ length: 100 }, lane));
      reply({ connected: mine.length - failed, failed, elapsedMs: performance.now() - started });
    } else if (m.type === 'close') {
      const from = m.from as number;
      const closing: Promise<unknown>[] = [];
      const below = (m.below as number | undefined) ?? Infinity;
      for (const [i, ws] of sockets) {
        if (i < from || i >= below) continue;
        sockets.delete(i);
        closing.push(new Promise((r) => ws.once('close', r)));
        // A gateway device says bye (it leaves its app's indexes) unless `keep`: then the
        // connection just drops, as in a gateway restart, and the registration stays.
        if (mode === 'gateway' && m.keep !== true) ws.send('{"t":"bye"}');
        else ws.close();
      }
      await Promise.all(closing);
      reply({ left: sockets.size });
    } else if (m.type === 'heartbeat') {
      // Every socket pings once per `everyMs`, spread evenly over the period, as devices do.
      clearInterval(pinger);
      const every = m.everyMs as number;
      const slots = Math.max(1, Math.round(every / 100));
      let tick = 0;
      if (every > 0)
        pinger = setInterval(() => {
          const slot = tick++ % slots;
          for (const [i, ws] of sockets)
            if (i % slots === slot && ws.readyState === WebSocket.OPEN) ws.send('{"t":"ping"}');
        }, 100);
      reply();
    } else if (m.type === 'bare-acks') {
      bareAcks = m.on === true;
      reply();
    } else if (m.type === 'expect') {
      received = 0;
      reachedAt = 0;
      target = m.count as number;
      reply();
    } else if (m.type === 'progress') {
      reply({ received, reachedAt });
    } else if (m.type === 'latency') {
      // Push API -> device, timed here: this process sends and receives (each server's own samples).
      latencies.length = 0;
      latencyStart.clear();
      const ids = [...sockets.keys()];
      const rate = m.rate as number;
      const total = Math.round(rate * (m.seconds as number));
      const t0 = performance.now();
      const auth = `Basic ${Buffer.from(`${APP}:${SECRET}`).toString('base64')}`;
      // node:http on kept-alive connections, as a load tool sends (fetch costs the sender more
      // per request, and that would be timed as the server's latency).
      const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
      const api = new URL(`${m.api as string}/v1/apps/${APP}/push`);
      const post = (body: string) =>
        new Promise<void>((resolve) => {
          const req = http.request(
            api,
            {
              method: 'POST',
              agent,
              headers: {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(body),
                authorization: auth,
              },
            },
            (res) => {
              res.resume();
              res.once('end', resolve);
            },
          );
          req.once('error', () => resolve()); // a lost push shows as a lost sample
          req.end(body);
        });
      const inflight: Promise<unknown>[] = [];
      for (let k = 0; k < total; k++) {
        const due = t0 + (k * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const device = ids[Math.floor(Math.random() * ids.length)]!;
        latencyStart.set(k, performance.now());
        inflight.push(post(JSON.stringify({ to: { device: `dev-${device}` }, data: { k } })));
      }
      await Promise.allSettled(inflight);
      const deadline = Date.now() + 10_000;
      while (latencyStart.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      agent.destroy();
      reply({ latencies, lost: latencyStart.size });
    }
  });
  console.log('worker ready 0');
}

// ------------------------------------------------------------------ the benchmark

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

async function fileLimit(): Promise<number> {
  const { stdout } = await promisify(execFile)('bash', ['-c', 'ulimit -n']);
  return Number(stdout.trim()) || 1024;
}

interface ServerRun {
  mem: Map<number, { rss: number; heap: number; note?: string }>;
  connectsPerSecond: number;
  fanoutPerSecond: number;
  /** Bare ws only: the broadcast with every socket corked. */
  fanoutCorkedPerSecond?: number;
  /** CPU ms per 1000 deliveries in the burst (send-per-frame run for bare ws), to 1 s after the last one. */
  fanoutCpu?: { server: number; redis: number; clients: number };
  /** Lone pushes one after another: deliveries per second of the time they took, and CPU. */
  lonePerSecond?: number;
  loneCpu?: { server: number; redis: number; clients: number };
  /** Bare ws only: lone pushes again, its devices acking as the gateway's do (the server reads each ack). */
  loneAckedPerSecond?: number;
  loneAckedCpu?: { server: number; redis: number; clients: number };
  /** CPU ms per 1000 connects of the first size (server, redis-server, clients). */
  connectCpu?: CpuSample;
  /** Bare ws only: connects that also make the hello -> welcome round trip (no token check, no Redis). */
  helloConnectsPerSecond?: number;
  helloConnectCpu?: CpuSample;
  /** Gateway only: the same devices connecting again after their connections dropped (registration kept). */
  reconnectsPerSecond?: number;
  reconnectCpu?: CpuSample;
  /** Process memory with no connections (after the warm-up came and went). */
  idle?: Mem;
  latency?: { p50: number; p99: number; max: number; samples: number; lost: number };
}

async function measure(
  kind: 'gateway' | 'bare',
  server: Child,
  workers: Child[],
  sizes: number[],
  cfg: {
    fanoutDevices: number;
    fanoutPushes: number;
    lonePushes: number;
    latencyRate: number;
    latencySeconds: number;
    latencyDevices: number;
    latencyClient: 'prober' | 'worker';
    /** The latency prober (--latency-client prober): a client process apart from the load workers. */
    prober?: Child;
    limit: number;
    only: 'all' | 'fanout' | 'latency';
    profile: string;
    profileKind: 'cpu' | 'heap';
    redisUrl?: string;
  },
): Promise<ServerRun> {
  const fanoutOnly = cfg.only === 'fanout';
  /** Only the connects that hold the load, then the latency phase (no memory, fan-out or reconnects). */
  const latencyOnly = cfg.only === 'latency';
  const noMemory = fanoutOnly || latencyOnly;
  const url =
    kind === 'gateway' ? `ws://127.0.0.1:${server.port}/v1/connect` : `ws://127.0.0.1:${server.port}`;
  const run: ServerRun = { mem: new Map(), connectsPerSecond: 0, fanoutPerSecond: 0 };
  // Warm-up: one-time costs (JIT-compiled code paths, buffer pools, Redis scripts) are paid by
  // 1000 connections that come and go before the baseline is taken, for both servers alike.
  const warm = 1_000_000;
  await Promise.all(
    workers.map((w) => w.request({ type: 'connect', mode: kind, url, from: warm, to: warm + 1000 })),
  );
  await Promise.all(workers.map((w) => w.request({ type: 'close', from: warm })));
  await new Promise((r) => setTimeout(r, 1000));
  const base = noMemory ? { rss: 0, heapUsed: 0, external: 0 } : await memoryOf(server);
  if (!noMemory) {
    run.idle = base;
    progress(`${kind}: idle RSS ${(base.rss / 2 ** 20).toFixed(1)} MiB`);
  }
  const profiling = kind === 'gateway' && cfg.profile !== '';
  const profileFile = (label: string) =>
    path.resolve(cfg.profile.replace(/(\.cpuprofile)?$/, `-${label}.${cfg.profileKind}profile`));
  /** Devices [from, to) connect from every worker in `mode`: connects/s and CPU per 1000 connects. */
  const timedConnects = async (mode: string, from: number, to: number) => {
    const cpuBefore = await cpuSample(server, workers, cfg.redisUrl);
    const results = await Promise.all(
      workers.map((w) =>
        w.request<{ connected: number; failed: number; elapsedMs: number }>({
          type: 'connect',
          mode,
          url,
          from,
          to,
        }),
      ),
    );
    const failed = results.reduce((n, r) => n + r.failed, 0);
    const elapsed = Math.max(...results.map((r) => r.elapsedMs)) / 1000;
    const made = to - from - failed;
    const cpu = cpuPerThousand(cpuBefore, await cpuSample(server, workers, cfg.redisUrl), made);
    return { perSecond: made / elapsed, cpu, failed, elapsed };
  };
  let have = 0;
  for (const wanted of sizes) {
    const size = Math.min(wanted, cfg.limit);
    const profileConnects = profiling && have === 0;
    if (profileConnects)
      await server.request({ type: 'pushgate:profile', action: 'start', kind: cfg.profileKind });
    const { perSecond, cpu, failed, elapsed } = await timedConnects(kind, have, size);
    if (profileConnects) {
      await server.request({ type: 'pushgate:profile', action: 'stop', file: profileFile('connect') });
      progress(`gateway: CPU profile of connect written to ${profileFile('connect')}`);
    }
    if (have === 0) {
      run.connectsPerSecond = perSecond;
      run.connectCpu = cpu;
    }
    have = size;
    if (noMemory) {
      progress(`${kind}: ${size - failed} connections in ${elapsed.toFixed(1)} s`);
      continue;
    }
    await new Promise((r) => setTimeout(r, 2000));
    const m = await memoryOf(server);
    const held = size - failed;
    run.mem.set(wanted, {
      rss: (m.rss - base.rss) / held,
      heap: (m.heapUsed + m.external - base.heapUsed - base.external) / held,
      note: size < wanted ? `clamped to ${size} by ulimit -n` : failed ? `${failed} failed` : undefined,
    });
    progress(
      `${kind}: ${held} connections in ${elapsed.toFixed(1)} s; RSS/conn ${((m.rss - base.rss) / held / 1024).toFixed(2)} KiB`,
    );
  }
  // Fan-out to fanoutDevices: lone pushes one after another, then a burst offered at once.
  const fanout = Math.min(cfg.fanoutDevices, have);
  await Promise.all(workers.map((w) => w.request({ type: 'close', from: fanout, below: warm })));
  const share = (pushes: number) =>
    workers.map(
      (_, k) =>
        Array.from({ length: fanout }, (_, i) => i).filter((i) => i % workers.length === k).length * pushes,
    );
  const auth = `Basic ${Buffer.from(`${APP}:${SECRET}`).toString('base64')}`;
  /** Offers `pushes` pushes to every fan-out device at once; resolves when they are offered. */
  const offer = async (pushes: number, cork: boolean) => {
    if (kind === 'bare') {
      const t0 = Date.now();
      const frame = JSON.stringify({
        t: 'push',
        seq: 1,
        id: 'mwq0mp4ee06ec5cdf98e8bdc#',
        exp: t0,
        ttl: 86400,
        priority: 'normal',
        sent: t0,
        data: { n: 1 },
      });
      await server.request({ type: 'broadcast', count: pushes, frame, cork });
      return;
    }
    // The pushes are offered at once (as a campaign dispatcher would), so storing one overlaps
    // writing another; the bare server likewise sends its frames back to back.
    await Promise.all(
      Array.from({ length: pushes }, async (_, p) => {
        // A 503 (Redis health check missed on a loaded machine) is retried as a sender would.
        for (let attempt = 0; ; attempt++) {
          const res = await fetch(`http://127.0.0.1:${server.port}/v1/apps/${APP}/push`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: auth },
            body: JSON.stringify({ to: { tag: 'fan' }, data: { n: p } }),
          });
          if (res.status === 202) break;
          const text = await res.text();
          if (res.status !== 503 || attempt >= 20) throw new Error(`fan-out push: ${res.status} ${text}`);
          progress(`${kind}: fan-out push answered 503, retrying`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }),
    );
  };
  /** Waits until every worker has its expected count; returns when the last one got there. */
  const reached = async () => {
    const deadline = Date.now() + 120_000;
    let done: { received: number; reachedAt: number }[] = [];
    while (Date.now() < deadline) {
      done = await Promise.all(
        workers.map((w) => w.request<{ received: number; reachedAt: number }>({ type: 'progress' })),
      );
      if (done.every((d) => d.reachedAt > 0)) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    return {
      end: Math.max(...done.map((d) => d.reachedAt || Date.now())),
      delivered: done.reduce((s, d) => s + d.received, 0),
    };
  };
  /** One measured phase: CPU and Redis calls around it, deliveries per second of its own time. */
  const phase = async (label: string, rounds: number, pushes: number, cork: boolean) => {
    if (profiling) await server.request({ type: 'pushgate:profile', action: 'start', kind: cfg.profileKind });
    const callsBefore = cfg.redisUrl ? await redisCommandCalls(cfg.redisUrl) : undefined;
    const cpuBefore = await cpuSample(server, workers, cfg.redisUrl);
    let busyMs = 0;
    let delivered = 0;
    for (let r = 0; r < rounds; r++) {
      const expected = share(pushes);
      await Promise.all(workers.map((w, k) => w.request({ type: 'expect', count: expected[k] })));
      const t0 = Date.now();
      await offer(pushes, cork);
      const got = await reached();
      busyMs += got.end - t0;
      delivered += got.delivered;
    }
    // CPU includes the acks that trail the last delivery (and ~1 s of idle timers).
    await new Promise((r) => setTimeout(r, 1000));
    const cpuAfter = await cpuSample(server, workers, cfg.redisUrl);
    if (callsBefore && cfg.redisUrl)
      progress(
        `${kind} ${label}: redis calls per push (store, route, acks, status): ${callsPerPush(callsBefore, await redisCommandCalls(cfg.redisUrl), rounds * pushes)}`,
      );
    const perK = (k: keyof CpuSample) => ((cpuAfter[k] - cpuBefore[k]) * 1000 * 1000) / delivered;
    const cpu = { server: perK('server'), redis: perK('redis'), clients: perK('clients') };
    const perSecond = delivered / (busyMs / 1000);
    progress(
      `${kind} ${label}: ${delivered} deliveries in ${busyMs} ms (${Math.round(perSecond)}/s); CPU per 1k: server ${cpu.server.toFixed(1)} ms, redis ${cpu.redis.toFixed(1)} ms, clients ${cpu.clients.toFixed(1)} ms`,
    );
    if (profiling) {
      const file = profileFile(label);
      await server.request({ type: 'pushgate:profile', action: 'stop', file });
      progress(`gateway: CPU profile of ${label} written to ${file}`);
    }
    return { perSecond, cpu };
  };
  if (!latencyOnly) {
    const lone = await phase('lone', cfg.lonePushes, 1, false);
    run.lonePerSecond = lone.perSecond;
    run.loneCpu = lone.cpu;
    // The bare server bursts twice: a send() per frame, then with every socket corked for the
    // whole burst (each device's frames in one write, as the gateway writes the pushes it stored
    // together for a device). The gateway is compared with both.
    const burst = await phase('burst', 1, cfg.fanoutPushes, false);
    run.fanoutPerSecond = burst.perSecond;
    run.fanoutCpu = burst.cpu;
    if (kind === 'bare') {
      run.fanoutCorkedPerSecond = (await phase('burst-corked', 1, cfg.fanoutPushes, true)).perSecond;
      // The floor of any server that keeps the ack contract: the same broadcast, but every device
      // acks what it read in one frame, as the gateway's devices do, and the server parses each ack.
      const acks = (on: boolean) =>
        Promise.all(
          [server, ...workers].map((c) => c.request({ type: c === server ? 'read-acks' : 'bare-acks', on })),
        );
      await acks(true);
      const acked = await phase('lone-acked', cfg.lonePushes, 1, false);
      await acks(false);
      run.loneAckedPerSecond = acked.perSecond;
      run.loneAckedCpu = acked.cpu;
    }
  }
  if (!fanoutOnly) {
    if (!latencyOnly) await new Promise((r) => setTimeout(r, 2000));
    if (profiling) await server.request({ type: 'pushgate:profile', action: 'start', kind: cfg.profileKind });
    // The prober connects its own devices beside the load and times pushes to them; without
    // it the first load worker does, among thousands of its devices.
    const prober = cfg.latencyClient === 'prober' ? cfg.prober : undefined;
    if (prober) {
      const r = await prober.request<{ connected: number; failed: number }>({
        type: 'connect',
        mode: kind,
        url,
        from: PROBE_DEVICES_FROM,
        to: PROBE_DEVICES_FROM + cfg.latencyDevices,
      });
      if (r.failed) throw new Error(`latency prober: ${r.failed} of its devices failed to connect`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    const lat = await (prober ?? workers[0]!).request<{ latencies: number[]; lost: number }>({
      type: 'latency',
      api: `http://127.0.0.1:${server.port}`,
      rate: cfg.latencyRate,
      seconds: cfg.latencySeconds,
    });
    await prober?.request({ type: 'close', from: 0 });
    run.latency = {
      p50: quantile(lat.latencies, 0.5),
      p99: quantile(lat.latencies, 0.99),
      max: Math.max(...lat.latencies),
      samples: lat.latencies.length,
      lost: lat.lost,
    };
    if (profiling) {
      const file = profileFile('latency');
      await server.request({ type: 'pushgate:profile', action: 'stop', file });
      progress(`gateway: CPU profile of the latency phase written to ${file}`);
    }
    progress(
      `${kind}: latency p50 ${run.latency.p50.toFixed(2)} ms p99 ${run.latency.p99.toFixed(2)} ms max ${run.latency.max.toFixed(2)} ms (${lat.latencies.length} samples, ${lat.lost} lost)`,
    );
  }
  await Promise.all(workers.map((w) => w.request({ type: 'close', from: 0 })));
  const size = Math.min(sizes[0]!, cfg.limit);
  if (kind === 'bare' && !noMemory) {
    // The floor of the protocol's connect: the same connects, each then sending the gateway's
    // hello (a real token) and waiting for a welcome of the gateway's shape; the server checks the
    // frame's shape but neither the token nor Redis. Last, so no other phase carries the listener.
    await server.request({ type: 'answer-hellos', on: true });
    const r = await timedConnects('bare-hello', 0, size);
    run.helloConnectsPerSecond = r.perSecond;
    run.helloConnectCpu = r.cpu;
    progress(`bare with hello -> welcome: ${size - r.failed} connections in ${r.elapsed.toFixed(1)} s`);
    await server.request({ type: 'answer-hellos', on: false });
    await Promise.all(workers.map((w) => w.request({ type: 'close', from: 0 })));
  }
  if (kind === 'gateway' && !noMemory) {
    // A reconnect storm: the devices connect (first hellos), their connections drop without a
    // bye (as when a gateway restarts), and they all come back. Their registration is in the
    // indexes (the index mark says so), so each hello is the claim alone.
    await timedConnects('gateway', 0, size);
    await Promise.all(workers.map((w) => w.request({ type: 'close', from: 0, keep: true })));
    // The gateway releases each presence and touches its indexes as the sockets close: let that
    // finish, so the reconnects' CPU is theirs alone.
    await new Promise((r) => setTimeout(r, 3000));
    const r = await timedConnects('gateway', 0, size);
    run.reconnectsPerSecond = r.perSecond;
    run.reconnectCpu = r.cpu;
    progress(`gateway reconnects: ${size - r.failed} connections in ${r.elapsed.toFixed(1)} s`);
    await Promise.all(workers.map((w) => w.request({ type: 'close', from: 0 })));
  }
  return run;
}

/** The latency prober's devices: an index range of their own (not the load's, nor the warm-up's). */
const PROBE_DEVICES_FROM = 2_000_000;

const GATEWAY_READY = /"port":(\d+).*"gateway listening"/;

/** A process's resident set from /proc, as `ps` and the kubelet see it: no GC forced first. */
function residentBytes(child: Child): number {
  const status = readFileSync(`/proc/${child.proc.pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!kib) throw new Error(`no VmRSS in /proc/${child.proc.pid}/status`);
  return Number(kib[1]) * 1024;
}

/** Seconds idle before "at rest" is judged; V8's memory reducer runs about 8 s after a full GC. */
const REST_MIN_S = 12;
/** Longest wait for both processes to come to rest. */
const REST_MAX_S = 60;

/**
 * Waits, idle, until every process's RSS has stayed within 1 MiB over the last 6 seconds (and at
 * least REST_MIN_S have passed), then returns the last reading of each. Bounded by REST_MAX_S.
 */
async function untilAtRest(
  children: Child[],
  startedAt: number,
): Promise<{ rss: number[]; seconds: number; settled: boolean }> {
  const history: number[][] = children.map(() => []);
  for (;;) {
    history.forEach((h, i) => h.push(residentBytes(children[i]!)));
    const seconds = (Date.now() - startedAt) / 1000;
    const settled = history.every((h) => {
      const last = h.slice(-6);
      return last.length === 6 && Math.max(...last) - Math.min(...last) <= 2 ** 20;
    });
    if ((seconds >= REST_MIN_S && settled) || seconds >= REST_MAX_S)
      return { rss: history.map((h) => h.at(-1)!), seconds, settled };
    if (Math.round(seconds) % 5 === 0)
      progress(
        `waiting for rest: RSS ${history.map((h) => (h.at(-1)! / 2 ** 20).toFixed(1)).join(' / ')} MiB at ${seconds.toFixed(0)} s`,
      );
    await new Promise((r) => setTimeout(r, 1000));
  }
}

interface IdleRss {
  gateway: number;
  bare: number;
}

/**
 * RSS with no connections as shipped: the gateway compiled and run by node alone, as the image
 * runs it, and a bare ws server in plain JavaScript (hack/bench/bare-idle.mjs), each started
 * fresh. Read from /proc with no GC forced, 2 s after start and at rest (untilAtRest): V8 grows
 * the young generation while modules load (up to 16 MiB semi-spaces), and a forced full GC does
 * not return it; its memory reducer does, about 8 s after a full GC, when the process is idle. A
 * process whose start needed no full GC keeps it: then the at-rest row shows that. Under tsx (the
 * other rows) both carry the loader.
 */
async function shippedIdleRss(
  gatewayArgs: string[],
  gatewayEnv: NodeJS.ProcessEnv,
): Promise<{ start: IdleRss; rest: IdleRss & { seconds: number; settled: boolean } }> {
  const shipped = compileShipped();
  const children: Child[] = [];
  const report = (when: string, idle: IdleRss) =>
    progress(
      `as shipped, ${when}: idle RSS gateway ${(idle.gateway / 2 ** 20).toFixed(1)} MiB, bare ws ${(idle.bare / 2 ** 20).toFixed(1)} MiB`,
    );
  try {
    const startedAt = Date.now();
    const gateway = await startChild([shipped.cli, ...gatewayArgs], GATEWAY_READY, gatewayEnv, [], false);
    children.push(gateway);
    const bare = await startChild(
      [path.join(here, 'bare-idle.mjs'), String(MAX_CLIENT_FRAME_BYTES)],
      /^bare ws listening (\d+)/,
      {},
      [],
      false,
    );
    children.push(bare);
    await new Promise((r) => setTimeout(r, 2000));
    const start = { gateway: residentBytes(gateway), bare: residentBytes(bare) };
    report('2 s after start', start);
    const rested = await untilAtRest(children, startedAt);
    if (!rested.settled) progress(`RSS still moving after ${REST_MAX_S} s: measured anyway`);
    const rest = {
      gateway: rested.rss[0]!,
      bare: rested.rss[1]!,
      seconds: rested.seconds,
      settled: rested.settled,
    };
    report(`at rest (${rested.seconds.toFixed(0)} s)`, rest);
    return { start, rest };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    shipped.remove();
  }
}

export default async function bench(argv: string[]) {
  const cfg = parseConfig(options, argv);
  if (cfg.only !== 'all') cfg.sizes = [cfg.fanoutDevices];
  const startedAt = new Date();
  const limit = (await fileLimit()) - 500;
  const workerCount = Math.max(cfg.workers, Math.ceil(Math.max(...cfg.sizes) / limit));
  if (Math.max(...cfg.sizes) > limit)
    progress(
      `ulimit -n allows ${limit + 500} files per process: sizes above ${limit} are clamped (raise it for 50k)`,
    );
  const run = promisify(execFile);
  const benchRedisServer = await benchRedis('bench-gateway');
  const redisUrl = benchRedisServer.url;
  const children: Child[] = [];
  try {
    const clientWorker = (k: number, of: number) =>
      startChild(
        [
          path.join(here, 'gateway.ts'),
          '--role',
          'clients',
          String(k),
          String(of),
          String(cfg.sourceAddresses),
          cfg.ackEach ? 'ack-each' : 'ack-per-read',
        ],
        /^worker ready (\d+)/,
      );
    const workers = await Promise.all(
      Array.from({ length: workerCount }, (_, k) => clientWorker(k, workerCount)),
    );
    children.push(...workers);
    // The latency prober: its own few devices, pushes sent and timed in a process that holds
    // nothing else, so its samples are the server's latency, not a busy load worker's.
    const prober =
      cfg.only !== 'fanout' && cfg.latencyClient === 'prober' ? await clientWorker(0, 1) : undefined;
    if (prober) children.push(prober);
    const params = { ...cfg, workers: workerCount, fileLimit: limit + 500 };

    progress('bare ws baseline');
    const bare = await startChild(
      [path.join(here, 'gateway.ts'), '--role', 'bare-ws'],
      /^bare ws listening (\d+)/,
    );
    children.push(bare);
    const bareRun = await measure('bare', bare, workers, cfg.sizes, { ...cfg, limit, prober });
    await bare.stop();

    const gatewayArgs = [
      'gateway',
      ...['--port', '0', '--host', '127.0.0.1', '--redis-url', redisUrl, '--key-prefix', 'bench'],
      ...['--gateway-id', 'bench-gw', '--max-connections', '1000000', '--accept-rate', '1000000'],
      ...['--heartbeat-min-ms', '600000', '--heartbeat-max-ms', '600000'],
      ...['--heartbeat-initial-ms', '600000', '--hello-timeout-ms', '120000'],
    ];
    const gatewayEnv = {
      PUSHGATE_APPS: `${APP}:${SECRET}`,
      PUSHGATE_LOG_LEVEL: 'info',
      // A fan-out stores 10k inboxes per push; on a loaded machine one script call can take
      // more than the 1 s default. The bench measures throughput, not the timeout (env, not
      // a flag, so a baseline tree without the option starts too).
      PUSHGATE_REDIS_COMMAND_TIMEOUT_MS: '30000',
    };
    /** A gateway from `root` (this tree, or --baseline-tree), on a flushed Redis, measured like the others. */
    const measureGateway = async (root: string, label: string): Promise<ServerRun> => {
      progress(label);
      await run('redis-cli', ['-u', redisUrl, 'FLUSHALL']);
      const gateway = await startChild(
        [path.join(root, 'cli/pushgate.ts'), ...gatewayArgs],
        GATEWAY_READY,
        gatewayEnv,
        cfg.gatewayNodeArgs,
      );
      children.push(gateway);
      const result = await measure('gateway', gateway, workers, cfg.sizes, {
        ...cfg,
        limit,
        redisUrl,
        prober,
      });
      await gateway.stop();
      return result;
    };
    // With --baseline-tree, the same gateway benchmark runs on another checkout (e.g. main
    // before a change) in this run, with the same workers and Redis, in the order asked for.
    const baseTree = cfg.baselineTree ? path.resolve(cfg.baselineTree) : '';
    let baseRun: ServerRun | undefined;
    if (baseTree && cfg.baselineOrder === 'first')
      baseRun = await measureGateway(baseTree, `gateway (baseline tree ${baseTree})`);
    const tree = cfg.tree ? path.resolve(cfg.tree) : repoRoot;
    const gwRun = await measureGateway(tree, tree === repoRoot ? 'gateway' : `gateway (tree ${tree})`);
    if (baseTree && cfg.baselineOrder === 'last')
      baseRun = await measureGateway(baseTree, `gateway (baseline tree ${baseTree})`);

    const rows: BenchRow[] = [];
    const bareName = 'bare ws';
    const fanoutNote = `gateway: push API -> Redis inbox -> frame, devices ack (${cfg.ackEach ? 'a frame per push' : 'one frame per read'})`;
    if (cfg.only !== 'latency') {
      rows.push({
        metric: `lone pushes one after another (${cfg.fanoutDevices} devices x ${cfg.lonePushes}), deliveries/s`,
        unit: 'msg/s',
        value: gwRun.lonePerSecond!,
        baseline: bareRun.lonePerSecond!,
        baselineName: 'bare ws broadcast',
        note: `each waited for until the last device has it; ${fanoutNote}`,
      });
      if (bareRun.loneAckedPerSecond)
        rows.push({
          metric: `lone pushes one after another (${cfg.fanoutDevices} devices x ${cfg.lonePushes}), deliveries/s`,
          unit: 'msg/s',
          value: gwRun.lonePerSecond!,
          baseline: bareRun.loneAckedPerSecond,
          baselineName: 'bare ws broadcast, devices ack',
          note: 'the floor of the ack contract: bare ws reads and parses one ack frame per device per push, stores nothing',
        });
      const burstMetric = `${cfg.fanoutPushes} pushes at once (${cfg.fanoutDevices} devices), deliveries/s`;
      rows.push({
        metric: burstMetric,
        unit: 'msg/s',
        value: gwRun.fanoutPerSecond,
        baseline: bareRun.fanoutPerSecond,
        baselineName: 'bare ws broadcast, a send per frame',
        note: fanoutNote,
      });
      rows.push({
        metric: burstMetric,
        unit: 'msg/s',
        value: gwRun.fanoutPerSecond,
        baseline: bareRun.fanoutCorkedPerSecond,
        baselineName: 'bare ws broadcast, corked per socket',
        note: fanoutNote,
      });
    }
    if (gwRun.latency && bareRun.latency) {
      const note = `${gwRun.latency.samples} samples at ${cfg.latencyRate}/s, ${gwRun.latency.lost} lost (bare: HTTP POST -> one frame)`;
      for (const q of ['p50', 'p99', 'max'] as const)
        rows.push({
          metric: `push API -> device latency ${q}`,
          unit: 'ms',
          value: gwRun.latency[q],
          baseline: bareRun.latency[q],
          baselineName: bareName,
          note,
        });
    }
    if (cfg.only === 'all') {
      rows.push({
        metric: 'connects per second',
        unit: 'conn/s',
        value: gwRun.connectsPerSecond,
        baseline: bareRun.connectsPerSecond,
        baselineName: bareName,
        note: 'gateway: upgrade + hello + JWT + Redis presence/tags',
      });
      if (bareRun.helloConnectsPerSecond)
        rows.push({
          metric: 'connects per second',
          unit: 'conn/s',
          value: gwRun.connectsPerSecond,
          baseline: bareRun.helloConnectsPerSecond,
          baselineName: 'bare ws, hello -> welcome',
          note: "the floor of the protocol's connect: bare ws also reads a hello and writes a welcome (no token check, no Redis)",
        });
      if (gwRun.reconnectsPerSecond && bareRun.helloConnectsPerSecond)
        rows.push({
          metric: 'reconnects per second (devices coming back, registration kept)',
          unit: 'conn/s',
          value: gwRun.reconnectsPerSecond,
          baseline: bareRun.helloConnectsPerSecond,
          baselineName: 'bare ws, hello -> welcome',
          note: 'a reconnect storm: the connections dropped without a bye; each hello is the Redis claim alone',
        });
      const cpuNote = 'CPU ms per 1000 connects (lower is better), during the connects';
      for (const [label, g] of [
        ['connects', gwRun.connectCpu],
        ['reconnects', gwRun.reconnectCpu],
      ] as const) {
        const b = bareRun.helloConnectCpu;
        if (!g || !b) continue;
        const baselineName = 'bare ws, hello -> welcome';
        rows.push(
          {
            metric: `${label}: CPU, gateway`,
            unit: 'ms/1k',
            value: g.server,
            baseline: b.server,
            baselineName,
            note: cpuNote,
          },
          {
            metric: `${label}: CPU, gateway + redis-server`,
            unit: 'ms/1k',
            value: g.server + g.redis,
            baseline: b.server,
            baselineName,
            note: cpuNote,
          },
        );
      }
      rows.push({
        metric: 'process RSS with no connections',
        unit: 'MiB',
        value: gwRun.idle!.rss / 2 ** 20,
        baseline: bareRun.idle!.rss / 2 ** 20,
        baselineName: bareName,
        note: 'after 1000 connections came and went; both run under tsx',
      });
    }
    for (const size of cfg.only === 'all' ? cfg.sizes : []) {
      const g = gwRun.mem.get(size)!;
      const b = bareRun.mem.get(size)!;
      const note = g.note ?? b.note;
      rows.push({
        metric: `RSS per idle connection @${size}`,
        unit: 'KiB',
        value: g.rss / 1024,
        baseline: b.rss / 1024,
        baselineName: bareName,
        note,
      });
      rows.push({
        metric: `live heap (heapUsed + external) per idle connection @${size}`,
        unit: 'KiB',
        value: g.heap / 1024,
        baseline: b.heap / 1024,
        baselineName: bareName,
        note,
      });
    }
    const cpuNote = 'CPU ms per 1000 deliveries (lower is better), counted to 1 s after the last';
    for (const [label, g, b] of [
      ['lone pushes', gwRun.loneCpu, bareRun.loneCpu],
      ['burst', gwRun.fanoutCpu, bareRun.fanoutCpu],
    ] as const) {
      if (!g || !b) continue; // --only latency
      rows.push({
        metric: `${label}: CPU, gateway`,
        unit: 'ms/1k',
        value: g.server,
        baseline: b.server,
        baselineName: 'bare ws server',
        note: cpuNote,
      });
      rows.push({
        metric: `${label}: CPU, gateway + redis-server`,
        unit: 'ms/1k',
        value: g.server + g.redis,
        baseline: b.server,
        baselineName: 'bare ws server',
        note: `${cpuNote}; redis ${g.redis.toFixed(1)}`,
      });
      rows.push({
        metric: `${label}: CPU, clients`,
        unit: 'ms/1k',
        value: g.clients,
        baseline: b.clients,
        baselineName: 'bare ws clients',
        note: `${cpuNote}; gateway clients ack`,
      });
      // Server, Redis and client workers share this machine's cores, so a deliveries/s ratio
      // follows the inverse of this one: the figure that says how far a change can move it.
      rows.push({
        metric: `${label}: CPU, all processes (gateway + redis-server + clients)`,
        unit: 'ms/1k',
        value: g.server + g.redis + g.clients,
        baseline: b.server + b.clients,
        baselineName: 'bare ws server + clients',
        note: `${cpuNote}; the processes share the machine's cores`,
      });
    }
    if (bareRun.loneAckedCpu) {
      const acked = bareRun.loneAckedCpu;
      rows.push({
        metric: 'lone pushes: CPU, gateway',
        unit: 'ms/1k',
        value: gwRun.loneCpu!.server,
        baseline: acked.server,
        baselineName: 'bare ws server, devices ack',
        note: `${cpuNote}; bare ws reads one ack frame per device per push`,
      });
      const g = gwRun.loneCpu!;
      rows.push({
        metric: 'lone pushes: CPU, all processes (gateway + redis-server + clients)',
        unit: 'ms/1k',
        value: g.server + g.redis + g.clients,
        baseline: acked.server + acked.clients,
        baselineName: 'bare ws server + clients, devices ack',
        note: `${cpuNote}; the acking clients alone cost about what bare ws's server and clients cost together`,
      });
    }
    if (cfg.shipped && cfg.only === 'all') {
      const idle = await shippedIdleRss(gatewayArgs, gatewayEnv);
      const asShipped = (when: string, rss: { gateway: number; bare: number }, note: string) =>
        rows.push({
          metric: `process RSS with no connections, as shipped, ${when}`,
          unit: 'MiB',
          value: rss.gateway / 2 ** 20,
          baseline: rss.bare / 2 ** 20,
          baselineName: 'bare ws, plain JavaScript',
          note: `gateway compiled (npm run build) and run by node alone, as the image runs it; no connection yet; ${note}`,
        });
      asShipped(
        '2 s after start',
        idle.start,
        'read from /proc, no GC forced; the young generation is still as module loading grew it',
      );
      asShipped(
        'at rest',
        idle.rest,
        `after ${idle.rest.seconds.toFixed(0)} s idle${idle.rest.settled ? ', RSS steady for 6 s' : `, RSS still moving at ${REST_MAX_S} s`}; no GC forced`,
      );
    }
    if (baseRun) rows.push(...againstBaselineTree(gwRun, baseRun, cfg.sizes, cfg.only !== 'all'));
    report('gateway', params, rows, startedAt);
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await benchRedisServer.down();
  }
}

/** This tree's gateway against another tree's, measured in the same run (--baseline-tree). */
function againstBaselineTree(
  now: ServerRun,
  before: ServerRun,
  sizes: number[],
  /** Not every phase ran (--only): no memory or connect rows. */
  partial: boolean,
): BenchRow[] {
  const baselineName = 'baseline tree';
  const rows: BenchRow[] = [];
  for (const size of partial ? [] : sizes) {
    const n = now.mem.get(size)!;
    const b = before.mem.get(size)!;
    const note = n.note ?? b.note;
    for (const [what, key] of [
      ['RSS', 'rss'],
      ['heap', 'heap'],
    ] as const)
      rows.push({
        metric: `tree: ${what} per idle connection @${size}`,
        unit: 'KiB',
        value: n[key] / 1024,
        baseline: b[key] / 1024,
        baselineName,
        note,
      });
  }
  if (!partial)
    rows.push({
      metric: 'tree: connects per second',
      unit: 'conn/s',
      value: now.connectsPerSecond,
      baseline: before.connectsPerSecond,
      baselineName,
    });
  if (now.fanoutCpu && before.fanoutCpu)
    rows.push({
      metric: 'tree: fan-out deliveries per second',
      unit: 'msg/s',
      value: now.fanoutPerSecond,
      baseline: before.fanoutPerSecond,
      baselineName,
    });
  if (now.fanoutCpu && before.fanoutCpu)
    rows.push({
      metric: 'tree: fan-out CPU, gateway + redis-server',
      unit: 'ms/1k',
      value: now.fanoutCpu.server + now.fanoutCpu.redis,
      baseline: before.fanoutCpu.server + before.fanoutCpu.redis,
      baselineName,
    });
  if (now.latency && before.latency)
    rows.push({
      metric: 'tree: push API -> device latency p99',
      unit: 'ms',
      value: now.latency.p99,
      baseline: before.latency.p99,
      baselineName,
    });
  return rows;
}

const roleAt = process.argv.indexOf('--role');
if (roleAt >= 0) {
  const role = process.argv[roleAt + 1];
  if (role === 'bare-ws') await runBareServer();
  else if (role === 'clients')
    await runClientWorker(
      Number(process.argv[roleAt + 2]),
      Number(process.argv[roleAt + 3]),
      Number(process.argv[roleAt + 4]),
      process.argv[roleAt + 5] === 'ack-each',
    );
}
