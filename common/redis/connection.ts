import { createHash } from 'node:crypto';
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
  pgStatusCreate(status: string, ttlMs: number, ...fieldsAndValues: string[]): Promise<number>;
}

const ALL_SCRIPTS: Record<string, ScriptSpec> = { ...scripts, ...rateLimitScripts, ...indexScripts };
type AllScriptCommands = ScriptCommands & RateLimitScriptCommands & IndexScriptCommands;

/**
 * The script commands, as EVALSHA (and EVAL when Redis does not have the script: NOSCRIPT, after
 * a restart or SCRIPT FLUSH). Not ioredis' defineCommand: it lists a defined command in the
 * client's `scriptsSet`, and every ioredis Pipeline (one per auto-pipelined flush, and one per
 * multi()) copies each listed script's two methods onto itself: with 18 scripts, 8.4 us and a
 * dictionary of 36 properties per Pipeline instead of 1.9 us, and a push made several flushes.
 */
type ScriptArg = string | number;
function scriptCommand(client: Redis | Cluster, spec: ScriptSpec) {
  const sha = createHash('sha1').update(spec.lua).digest('hex');
  const fixed = spec.numberOfKeys;
  return (...args: ScriptArg[]): Promise<unknown> => {
    // A variable-key script takes its key count first (as EVALSHA does).
    const call = fixed === undefined ? args : [fixed, ...args];
    return client.evalsha(sha, ...(call as [number, ...ScriptArg[]])).catch((err: unknown) => {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      // EVAL runs it and caches it: the next EVALSHA finds it.
      return client.eval(spec.lua, ...(call as [number, ...ScriptArg[]]));
    });
  };
}

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
  const commands: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(ALL_SCRIPTS)) commands[name] = scriptCommand(client, s);
  return Object.assign(client, commands) as unknown as T & AllScriptCommands;
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
    ...(autoPipelining ? { enableAutoPipelining: true } : {}),
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
    retryStrategy,
    ...opts.options,
  };
  // A cluster auto-pipelines per node (ioredis): scripts are EVALSHA calls (scriptCommand), whose
  // first key ioredis finds after the key count, so each joins the pipeline of the node holding
  // its keys (a script's keys share one hashtag). A single Redis coalesces its writes instead.
  const client = connect(url, base, opts.cluster ?? false, true);
  if (client instanceof Redis) coalesceWrites(client);
  return defineScripts(client);
}

/**
 * Every command written in one turn of the event loop leaves in one socket write: the first
 * corks the socket, and the check phase (setImmediate, where ioredis' auto-pipelining flushes
 * too) uncorks it. So a fan-out's 1,024 bucket stores (or acks, or tag reads), or the claims of
 * the hellos read in one poll, go out in one write, as with auto-pipelining, but without its
 * Pipeline objects: measured with a lone ioredis client sending 8k commands a second, about 30%
 * of what auto-pipelining (or an explicit pipeline) allocates outlives two scavenges and is
 * promoted (2-4 MB a scavenge, 4-6 ms pauses); plain commands promote 2% (1 ms pauses). Those
 * pauses were most of the push API's latency tail, and part of a fan-out's GC.
 */
function coalesceWrites(client: Redis): void {
  const send = client.sendCommand.bind(client);
  let corked = false;
  client.sendCommand = (command, stream) => {
    const socket = client.stream;
    // Only the command connection's own writes (a caller-given stream is a Pipeline's).
    if (!corked && stream === undefined && socket && client.status === 'ready') {
      corked = true;
      socket.cork();
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    return send(command, stream);
  };
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
