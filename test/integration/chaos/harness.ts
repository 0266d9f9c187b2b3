import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { RecordingDevice } from '../../support/gateway.js';
import { pushApi, startGatewayProcess, until, type GatewayProcess } from '../../support/gateway.js';
import { freePort } from '../../support/net.js';

/**
 * The chaos harness: a redis-server of the test's own (so it can be frozen, killed, emptied or
 * rewound without touching the run's shared Redis), real gateway processes, real devices on the
 * client library, and a ledger that counts, per test, what the push API accepted, what reached
 * the app (the client's `push` event, after its dedupe by id), what was lost and what reached
 * the app twice. Every chaos test ends with lost = 0 and duplicates to app = 0.
 */

const execFileP = promisify(execFile);

/**
 * A redis-server on 127.0.0.1 that a test controls. No persistence of its own (`--save ''`,
 * no AOF); `snapshot()` writes an RDB on demand, and a restart loads the last snapshot if one
 * is there: that is how a test makes Redis come back out of date (a lagging replica, an old
 * snapshot) or empty (a restart without persistence, a failover to an empty replica).
 */
export class ChaosRedis {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<ChaosRedis> {
    const r = new ChaosRedis(await freePort(), mkdtempSync(path.join(os.tmpdir(), 'pushgate-chaos-redis-')));
    await r.boot();
    return r;
  }

  private get dump() {
    return path.join(this.dir, 'dump.rdb');
  }

  private async boot() {
    const proc = spawn(
      'redis-server',
      [
        ...['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        ...['--dir', this.dir, '--dbfilename', 'dump.rdb', '--maxclients', '10000'],
      ],
      { stdio: 'ignore' },
    );
    this.proc = proc;
    this.exited = new Promise((r) => proc.once('exit', () => r()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if ((await this.cli('PING')) === 'PONG') return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** One command through redis-cli (a fresh connection, so it works while gateways are stuck). */
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await execFileP('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), ...args], {
      timeout: 5000,
    });
    return stdout.trim();
  }

  /** SIGSTOP: sockets stay open, nothing answers (a frozen VM, a blocked disk, a stuck fork). */
  freeze() {
    this.proc?.kill('SIGSTOP');
  }

  thaw() {
    this.proc?.kill('SIGCONT');
  }

  /** SIGKILL and wait for the exit: connections are refused from now on. */
  async kill() {
    this.proc?.kill('SIGCONT');
    this.proc?.kill('SIGKILL');
    await this.exited;
  }

  /** Start again on the same port, loading the last snapshot if there is one. */
  async restart() {
    await this.kill();
    await this.boot();
  }

  /** Restart with no data at all (a restart without persistence, failover to an empty replica). */
  async restartEmpty() {
    await this.kill();
    if (existsSync(this.dump)) unlinkSync(this.dump);
    await this.boot();
  }

  /** Write an RDB of the data as it is now (the state a lagging replica would come back with). */
  async snapshot() {
    await this.cli('SAVE');
    copyFileSync(this.dump, `${this.dump}.snap`);
  }

  /** Kill, then come back with the data of the last snapshot (time goes backwards). */
  async rewind() {
    await this.kill();
    copyFileSync(`${this.dump}.snap`, this.dump);
    await this.boot();
  }

  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A gateway process against a chaos Redis; `id` undefined = the gateway's default id, computed
 * as outside a pod (no POD_NAME).
 */
export function startChaosGateway(opts: {
  redisUrl: string;
  prefix: string;
  id?: string;
  args?: string[];
}): Promise<GatewayProcess> {
  return startGatewayProcess({ ...opts, env: { POD_NAME: undefined } });
}

export interface LedgerFigures {
  /** Deliveries owed: for each accepted push, one per recipient. */
  accepted: number;
  /** Of those, how many reached the app (surfaced by the client). */
  delivered: number;
  lost: number;
  /** Pushes surfaced to the app more than once (the client's dedupe failed to hide a resend). */
  duplicatesToApp: number;
  /** Resends on the wire that the client dropped by id (allowed by at-least-once; for the record). */
  wireDuplicates: number;
  /** Push API calls refused (not accepted: nothing is owed for them). */
  refused: number;
}

/**
 * Counts what a chaos test owes and what arrived. `push()` goes through the real push API and
 * records a 202 as owed to every listed recipient; anything else is a refusal (owed nothing).
 */
export class Ledger {
  private readonly owed = new Map<string, Set<string>>();
  private readonly devices = new Map<string, RecordingDevice>();
  private wire = 0;
  refused = 0;
  readonly statuses = new Map<number, number>();

  track(...devices: RecordingDevice[]) {
    for (const d of devices) {
      this.devices.set(d.device, d);
      d.client.on('duplicate', () => this.wire++);
    }
  }

  /** Record a push the API accepted for `recipients` (when the test called the API itself). */
  owe(id: string, recipients: string[]) {
    for (const r of recipients) {
      let s = this.owed.get(r);
      if (!s) this.owed.set(r, (s = new Set()));
      s.add(id);
    }
  }

  async push(
    base: string,
    to: Record<string, unknown>,
    recipients: string[],
    data: unknown,
    opts: { timeoutMs?: number; idempotencyKey?: string } = {},
  ): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
    const t0 = Date.now();
    let r: { status: number; body: Record<string, unknown> };
    try {
      r = await Promise.race([
        pushApi(base, { to, data }, { idempotencyKey: opts.idempotencyKey }),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('push API timeout')), opts.timeoutMs ?? 10_000),
        ),
      ]);
    } catch {
      r = { status: 0, body: {} };
    }
    this.statuses.set(r.status, (this.statuses.get(r.status) ?? 0) + 1);
    if (r.status === 202) this.owe(r.body.id as string, recipients);
    else this.refused++;
    return { ...r, ms: Date.now() - t0 };
  }

  figures(): LedgerFigures {
    let accepted = 0;
    let delivered = 0;
    for (const [device, ids] of this.owed) {
      const got = new Set(this.devices.get(device)?.ids() ?? []);
      accepted += ids.size;
      for (const id of ids) if (got.has(id)) delivered++;
    }
    let duplicatesToApp = 0;
    for (const d of this.devices.values()) duplicatesToApp += d.pushes.length - new Set(d.ids()).size;
    return {
      accepted,
      delivered,
      lost: accepted - delivered,
      duplicatesToApp,
      wireDuplicates: this.wire,
      refused: this.refused,
    };
  }

  /** Waits until everything owed has arrived (or the time is up), then returns the figures. */
  async settle(timeoutMs: number): Promise<LedgerFigures> {
    await until(() => this.figures().lost === 0, timeoutMs, 'every accepted push at its device').catch(
      () => {},
    );
    return this.figures();
  }
}

/** One line per chaos test with its figures, for the run log and the report. */
export function report(test: string, figures: object) {
  console.log(`[chaos] ${test}: ${JSON.stringify(figures)}`);
}
