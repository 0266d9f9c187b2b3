import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { DeviceClient, type DeviceClientOptions } from '../../client/device-client.js';
import { signDeviceToken } from '../../common/protocol/token.js';
import { SUBPROTOCOL, type PushFrame } from '../../common/protocol/frames.js';
import { repoRoot } from './stack.js';

/**
 * Helpers for the gateway integration tests: real `pushgate gateway` processes (tsx, loopback,
 * a free port each) against the run's real Redis, each test file on its own key prefix.
 */
export const APP = 'app1';
export const SECRET = 'app1-secret-0123456789';
export const OTHER_APP = 'app2';
export const OTHER_SECRET = 'app2-secret-0123456789';
export const APPS = `${APP}:${SECRET},${OTHER_APP}:${OTHER_SECRET}`;

export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(3).toString('hex')}`;
}

export interface GatewayProcess {
  id: string;
  port: number;
  wsUrl: string;
  httpUrl: string;
  proc: ChildProcess;
  logs: string[];
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

export interface PushgateProcess {
  port: number;
  proc: ChildProcess;
  logs: string[];
  exited: Promise<number | null>;
}

/**
 * Runs `pushgate <command> --port 0 --host 127.0.0.1 ...args` and resolves with the port it
 * logs in its "<command> listening" line.
 */
export async function startPushgateProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<PushgateProcess> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(repoRoot, 'cli/pushgate.ts'),
      command,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      ...args,
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, PUSHGATE_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL'); // a process that never started must not outlive the test
      reject(new Error(`${command} did not start within 30 s:\n${logs.join('\n')}`));
    }, 30_000);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      logs.push(line);
      if (line.includes(`"${command} listening"`)) {
        clearTimeout(t);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    createInterface({ input: proc.stderr! }).on('line', (line) => logs.push(line));
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`${command} exited with ${code}:\n${logs.join('\n')}`));
    });
  });
  return { port, proc, logs, exited };
}

/** A gateway process; without `id` it runs on its default id (read back from its log). */
export async function startGatewayProcess(opts: {
  redisUrl: string;
  prefix: string;
  id?: string;
  region?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}): Promise<GatewayProcess> {
  const { port, proc, logs, exited } = await startPushgateProcess(
    'gateway',
    [
      ...['--redis-url', opts.redisUrl, '--key-prefix', opts.prefix],
      ...(opts.id ? ['--gateway-id', opts.id] : []),
      ...['--region', opts.region ?? 'cn-north-1', '--registry-interval-ms', '1000'],
      ...(opts.args ?? []),
    ],
    { PUSHGATE_APPS: APPS, ...opts.env },
  );
  const listening = logs.find((l) => l.includes('"gateway listening"'));
  return {
    id: opts.id ?? (listening ? (JSON.parse(listening) as { id: string }).id : ''),
    port,
    wsUrl: `ws://127.0.0.1:${port}/v1/connect`,
    httpUrl: `http://127.0.0.1:${port}`,
    proc,
    logs,
    exited,
    kill: (signal) => void proc.kill(signal),
  };
}

export async function stopGateway(g: GatewayProcess | undefined) {
  if (!g || g.proc.exitCode !== null || g.proc.signalCode !== null) return;
  g.kill('SIGKILL');
  await g.exited;
}

export const basicAuth = (app = APP, secret = SECRET) =>
  `Basic ${Buffer.from(`${app}:${secret}`).toString('base64')}`;

export async function pushApi(
  base: string,
  body: unknown,
  opts: { app?: string; auth?: string; idempotencyKey?: string; rawBody?: string; contentType?: string } = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? 'application/json',
    authorization: opts.auth ?? basicAuth(),
  };
  if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
  const res = await fetch(`${base}/v1/apps/${opts.app ?? APP}/push`, {
    method: 'POST',
    headers,
    body: opts.rawBody ?? JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

export function token(
  device: string,
  opts: { app?: string; secret?: string; ttlSeconds?: number; exp?: number; alias?: string } = {},
) {
  return signDeviceToken(opts.secret ?? SECRET, {
    app: opts.app ?? APP,
    device,
    alias: opts.alias,
    ttlSeconds: opts.ttlSeconds,
    exp: opts.exp,
  });
}

/** A device on the client library that records every push it surfaces. */
export class RecordingDevice {
  readonly client: DeviceClient;
  readonly pushes: PushFrame[] = [];
  readonly closes: number[] = [];
  constructor(opts: Omit<DeviceClientOptions, 'token' | 'app'> & { app?: string; secret?: string }) {
    this.client = new DeviceClient({
      app: opts.app ?? APP,
      // The app server binds the alias: it is a claim of the token (PROTOCOL.md section 4).
      token: () => token(opts.device, { app: opts.app, secret: opts.secret, alias: opts.alias ?? undefined }),
      backoffMinMs: 100,
      backoffMaxMs: 1000,
      ...opts,
    });
    this.client.on('push', (p) => this.pushes.push(p));
    this.client.on('close', (code) => this.closes.push(code));
  }
  get device() {
    return (this.client as unknown as { opts: DeviceClientOptions }).opts.device;
  }
  ids(): string[] {
    return this.pushes.map((p) => p.id);
  }
  dataOf(): unknown[] {
    return this.pushes.map((p) => p.data);
  }
}

/** A raw ws connection for hostile-input tests: resolves the close code and reason. */
export interface RawConnection {
  ws: WebSocket;
  frames: Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
  opened: Promise<void>;
}

export function rawConnect(url: string, opts: { protocol?: string | false } = {}): RawConnection {
  const ws = new WebSocket(url, opts.protocol === false ? undefined : (opts.protocol ?? SUBPROTOCOL), {
    perMessageDeflate: false,
  });
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d) => {
    try {
      frames.push(JSON.parse(d.toString()) as Record<string, unknown>);
    } catch {
      frames.push({ raw: d.toString() });
    }
  });
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, r) => resolve({ code, reason: r.toString() })),
  );
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', () => reject(new Error('closed before open')));
  });
  opened.catch(() => {});
  return { ws, frames, closed, opened };
}

/** Raw connection that said hello and got welcome. */
export async function rawSession(
  url: string,
  device: string,
  extra: Record<string, unknown> = {},
): Promise<RawConnection> {
  const c = rawConnect(url);
  await c.opened;
  c.ws.send(JSON.stringify({ t: 'hello', v: 1, token: await token(device), ...extra }));
  await until(() => c.frames.some((f) => f.t === 'welcome'), 10_000, `welcome for ${device}`);
  return c;
}

export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
