import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { scripts, type ScriptSpec } from './scripts.js';
import { rateLimitScripts, type RateLimitScriptCommands } from './ratelimit-scripts.js';
import { indexScripts, type IndexScriptCommands } from './index-scripts.js';

type Reply = (string | number | Reply[])[];

/** The script commands every pushgate connection carries (see scripts.ts for their contracts). */
export interface ScriptCommands {
  /** numkeys = devices (their meta keys); see scripts.ts. Returns per device its gateway, then 3 or 6 values per entry. */
  pgStore(numkeys: number, ...keysThenArgs: (string | number)[]): Promise<(string | number)[]>;
  /** numkeys = entries (their devices' meta keys); ARGV: per entry id count and receipt seq, then ids. */
  pgAck(numkeys: number, ...keysThenArgs: (string | number)[]): Promise<(number | string)[]>;
  pgReplay(
    inbox: string,
    msgs: string,
    collapse: string,
    now: number,
    afterSeq: number,
    limit: number,
  ): Promise<[number, Reply]>;
  pgClaim(
    meta: string,
    inbox: string,
    msgs: string,
    collapse: string,
    gw: string,
    sess: string,
    ttlMs: number,
    setTags: '0' | '1',
    tagsJson: string,
    setAlias: '0' | '1',
    alias: string,
    now: number,
    limit: number,
  ): Promise<[string, string, string, string, string, number, number, Reply, string]>;
  pgRelease(meta: string, sess: string, hb: string, now: number): Promise<number>;
  pgGcra(key: string, intervalMs: number, burst: number, cost: number): Promise<[number, number, number]>;
  pgLimitAdmit(
    tat: string,
    queue: string,
    intervalMs: number,
    burst: number,
    releaseBurst: number,
    bound: number,
    n: number,
    ...entries: string[]
  ): Promise<[number, number, number, number, number, number, number, number]>;
  pgLimitRelease(
    tat: string,
    queue: string,
    releasing: string,
    lease: string,
    token: string,
    leaseMs: number,
    intervalMs: number,
    burst: number,
    max: number,
    prepaid: number,
  ): Promise<[number, number, string[], number]>;
  pgLimitLend(
    tat: string,
    queue: string,
    intervalMs: number,
    burst: number,
    want: number,
  ): Promise<[number, number]>;
  pgLimitReleased(releasing: string, lease: string, token: string): Promise<number>;
  pgIncrIfExists(hash: string, counter: string, by: number): Promise<number>;
}

const ALL_SCRIPTS: Record<string, ScriptSpec> = { ...scripts, ...rateLimitScripts, ...indexScripts };
type AllScriptCommands = ScriptCommands & RateLimitScriptCommands & IndexScriptCommands;

const VARIABLE_KEY_SCRIPTS = Object.entries(ALL_SCRIPTS)
  .filter(([, s]) => s.numberOfKeys === undefined)
  .map(([name]) => name);

/** A Redis or Redis Cluster client with the pushgate scripts defined. */
export type PgRedis = (Redis | Cluster) & AllScriptCommands;

export interface RedisConnectOptions {
  /** Connection name (CLIENT SETNAME), for `CLIENT LIST` when debugging. */
  name?: string;
  /** Treat the URL as one seed node of a Redis Cluster. */
  cluster?: boolean;
  /** Extra ioredis options (e.g. lazyConnect). */
  options?: RedisOptions;
}

function defineScripts<T extends Redis | Cluster>(client: T): T & AllScriptCommands {
  for (const [name, s] of Object.entries(ALL_SCRIPTS)) {
    client.defineCommand(name, { numberOfKeys: s.numberOfKeys, lua: s.lua });
  }
  return client as T & AllScriptCommands;
}

/** How every pushgate connection retries: back off to 2 s between attempts, never give up. */
const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);

/**
 * The one place a Redis or Redis Cluster client is built. For a cluster the URL is one seed
 * node, and what the URL carries besides the address (user, password, TLS for rediss://, db)
 * applies to every node: ioredis' Cluster takes none of it from the seed, so it is passed as
 * the nodes' options here.
 */
function connect(
  url: string,
  base: RedisOptions,
  cluster: boolean,
  autoPipelining: boolean,
): Redis | Cluster {
  if (!cluster) return new Redis(url, base);
  const u = new URL(url);
  const nodeOptions: RedisOptions = {
    ...base,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    ...(u.protocol === 'rediss:' ? { tls: base.tls ?? {} } : {}),
  };
  return new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    redisOptions: nodeOptions,
    lazyConnect: base.lazyConnect,
    clusterRetryStrategy: retryStrategy,
    ...(autoPipelining
      ? { enableAutoPipelining: true, autoPipeliningIgnoredCommands: VARIABLE_KEY_SCRIPTS }
      : {}),
  });
}

/**
 * Opens a command connection. One code path for a single Redis and for Redis Cluster: all
 * multi-key work goes through scripts or commands whose keys share a hashtag (keys.ts).
 * Commands queue while (re)connecting; a command fails after `maxRetriesPerRequest` retries.
 */
export function createRedis(url: string, opts: RedisConnectOptions = {}): PgRedis {
  const base: RedisOptions = {
    connectionName: opts.name,
    maxRetriesPerRequest: 5,
    enableAutoPipelining: true,
    // Scripts with a variable key count take the count as their first argument; ioredis'
    // auto-pipelining would hash that number as if it were the key and, on a cluster, group
    // the call with the wrong node. There they are sent on their own (still without waiting).
    // A single Redis has one pipeline whatever the key: they join it, so a fan-out's 1,024
    // bucket stores (or acks, or tag reads) leave in one socket write, not 1,024.
    autoPipeliningIgnoredCommands: opts.cluster ? VARIABLE_KEY_SCRIPTS : [],
    retryStrategy,
    ...opts.options,
  };
  return defineScripts(connect(url, base, opts.cluster ?? false, true));
}

/**
 * A second connection for SUBSCRIBE (a subscribed connection cannot run other commands),
 * built by the same code as createRedis, so both reach the same servers with the same
 * credentials.
 */
export function createSubscriber(url: string, opts: RedisConnectOptions = {}): Redis | Cluster {
  const base: RedisOptions = { connectionName: opts.name, retryStrategy, ...opts.options };
  return connect(url, base, opts.cluster ?? false, false);
}
