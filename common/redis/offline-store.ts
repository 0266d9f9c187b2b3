import type { PgRedis } from './connection.js';
import { deviceBucket, deviceStoreKeys, type RedisKeys } from './keys.js';
import { encodeStoredMessage, type StoredMessage } from '../protocol/server-frames.js';
import { resolveEntries } from './bodies.js';

export interface StoreResult {
  /**
   * 'stored': new inbox entry; 'duplicate': this id was already in the inbox (a retried push),
   * nothing changed; 'offline': only-if-online was asked (TTL 0) and no gateway holds the device.
   */
  outcome: 'stored' | 'duplicate' | 'offline';
  seq: number;
  /** Gateway that holds the device now ('' = offline). */
  gateway: string;
  /** Id of the older message this one replaced through its collapse key. */
  replaced?: string;
  /** Oldest messages dropped because the inbox was full. */
  evicted: number;
  /** Their ids (message ids never contain a comma: the gateway mints them). */
  evictedIds: readonly string[];
  /**
   * Of the replaced and evicted ids, those the device had read (its receipts counted them
   * delivered): they leave the inbox read but not acked (status `waiting.delivered`).
   */
  readGoneIds: readonly string[];
  /** Messages in the inbox after this store. */
  inboxSize: number;
}

export interface StoreLimits {
  /** Messages kept per device; the oldest are dropped beyond it. */
  maxPerDevice: number;
  /** How long a device's keys live after the last store (ms); at least the longest TTL. */
  keyTtlMs: number;
}

/** Groups items by their device's hashtag bucket (one script call per bucket). */
function byBucket<T>(items: T[], deviceOf: (t: T) => string): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  items.forEach((item, i) => {
    const b = deviceBucket(deviceOf(item));
    let g = groups.get(b);
    if (!g) groups.set(b, (g = []));
    g.push(i);
  });
  return groups;
}

/** The result lists of the common store (nothing left the inbox): one shared empty list. */
const NONE: readonly string[] = Object.freeze([]);

/** A comma-separated id list of a script reply ('' = none). */
function idList(v: unknown): readonly string[] {
  const s = String(v);
  return s ? s.split(',') : NONE;
}

/** Largest number of devices in one script call (bounds the time Redis spends in one script). */
const MAX_DEVICES_PER_CALL = 200;
/** Largest number of (device, message) entries in one store call, for the same reason. */
const MAX_ENTRIES_PER_CALL = 1000;

/** One caller's storeMessageForDevices, waiting in (or being written by) a store batch. */
interface StoreJob {
  keys: RedisKeys;
  app: string;
  devices: string[];
  message: StoredMessage;
  body: string;
  onlyIfOnline: boolean;
  limits: StoreLimits;
  onPart?: (indexes: number[], results: readonly StoreResult[]) => void;
  results: StoreResult[];
  /** Script calls of this job still running. */
  calls: number;
  failed: boolean;
  resolve(results: StoreResult[]): void;
  reject(err: unknown): void;
}

/** The entries of one script call: devices (in call order) and, per device, its jobs' indexes. */
interface StoreCall {
  keys: RedisKeys;
  app: string;
  limits: StoreLimits;
  devices: Map<string, [StoreJob, number][]>;
  entries: number;
}

/**
 * Group commit of stores on one Redis client: stores asked for in one turn of the event loop,
 * or while the previous batch is still running, go to Redis together, as one script call per
 * hashtag bucket that stores every message of the batch for that bucket's devices. A fan-out
 * of several pushes to the same audience then costs one call per bucket (not per push), and
 * each device's new messages come back together, so the gateway writes them in one go.
 * Messages of one batch are stored for a device in the order they were asked for, and a batch
 * starts only when the previous one has finished: seq order is acceptance order.
 */
class StoreBatcher {
  private queue: StoreJob[] = [];
  private running = 0;
  private scheduled = false;

  constructor(private readonly redis: PgRedis) {}

  add(job: StoreJob) {
    this.queue.push(job);
    this.schedule();
  }

  private schedule() {
    if (this.scheduled || this.running > 0 || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush() {
    const jobs = this.queue;
    this.queue = [];
    // Calls open per (key prefix, app, limits), then per bucket: the group's key is made once
    // per job, not once per recipient (a fan-out's flush touches every recipient).
    const open = new Map<string, Map<number, StoreCall>>();
    const calls: StoreCall[] = [];
    for (const job of jobs) {
      const group = `${job.keys.prefix}\u0000${job.app}\u0000${job.limits.maxPerDevice}\u0000${job.limits.keyTtlMs}`;
      let buckets = open.get(group);
      if (!buckets) open.set(group, (buckets = new Map()));
      const { devices } = job;
      for (let i = 0; i < devices.length; i++) {
        const device = devices[i]!;
        const bucket = deviceBucket(device);
        let call = buckets.get(bucket);
        let entries = call?.devices.get(device);
        if (
          call &&
          !entries &&
          (call.devices.size >= MAX_DEVICES_PER_CALL || call.entries >= MAX_ENTRIES_PER_CALL)
        )
          call = undefined;
        if (!call) {
          call = { keys: job.keys, app: job.app, limits: job.limits, devices: new Map(), entries: 0 };
          buckets.set(bucket, call);
          calls.push(call);
        }
        if (!entries) call.devices.set(device, (entries = []));
        entries.push([job, i]);
        call.entries++;
      }
    }
    for (const job of jobs) if (job.devices.length === 0) job.resolve(job.results);
    for (const call of calls) this.send(call);
  }

  private send(call: StoreCall) {
    const messages = new Map<StoreJob, number>();
    const keyArgs: string[] = [];
    const entryArgs: (string | number)[] = [];
    for (const [device, entries] of call.devices) {
      keyArgs.push(call.keys.deviceMeta(call.app, device));
      entryArgs.push(entries.length);
      for (const [job] of entries) {
        let m = messages.get(job);
        if (m === undefined) {
          messages.set(job, (m = messages.size + 1));
          job.calls++;
        }
        entryArgs.push(m);
      }
    }
    const messageArgs: string[] = [];
    for (const job of messages.keys())
      messageArgs.push(job.message.id, job.body, job.message.collapse ?? '', job.onlyIfOnline ? '1' : '0');
    this.running++;
    this.redis
      .pgStore(
        keyArgs.length,
        ...keyArgs,
        call.limits.maxPerDevice,
        call.limits.keyTtlMs,
        messages.size,
        ...messageArgs,
        ...entryArgs,
      )
      .then(
        (flat) => {
          const parts = new Map<StoreJob, number[]>();
          let o = 0;
          for (const entries of call.devices.values()) {
            const gateway = String(flat[o++]);
            for (const [job, i] of entries) {
              // See pgStore: code, seq, inbox size; code 3 adds what left the inbox.
              const code = Number(flat[o]);
              const offline = code === 2;
              const r: StoreResult = {
                outcome: code === 1 || code === 3 ? 'stored' : offline ? 'offline' : 'duplicate',
                seq: Number(flat[o + 1]),
                gateway: offline ? '' : gateway,
                replaced: undefined,
                evicted: 0,
                inboxSize: Number(flat[o + 2]),
                evictedIds: NONE,
                readGoneIds: NONE,
              };
              o += 3;
              if (code === 3) {
                r.replaced = String(flat[o]) || undefined;
                r.evictedIds = idList(flat[o + 1]);
                r.evicted = r.evictedIds.length;
                r.readGoneIds = idList(flat[o + 2]);
                o += 3;
              }
              job.results[i] = r;
              let part = parts.get(job);
              if (!part) parts.set(job, (part = []));
              part.push(i);
            }
          }
          for (const [job, part] of parts) {
            if (job.failed) continue;
            try {
              job.onPart?.(part, job.results);
            } catch (err) {
              job.failed = true;
              job.reject(err);
            }
          }
        },
        (err: unknown) => {
          for (const job of messages.keys()) {
            if (job.failed) continue;
            job.failed = true;
            job.reject(err);
          }
        },
      )
      .finally(() => {
        for (const job of messages.keys()) if (--job.calls === 0 && !job.failed) job.resolve(job.results);
        this.running--;
        this.schedule();
      })
      .catch(() => {});
  }
}

const batchers = new WeakMap<PgRedis, StoreBatcher>();

/**
 * Stores one message for many devices: one script call per hashtag bucket of devices (so the
 * same code runs on Redis Cluster), all calls pipelined, shared with the other stores asked
 * for at the same time (see StoreBatcher). Results are in `devices` order.
 */
export function storeMessageForDevices(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  devices: string[],
  message: StoredMessage,
  limits: StoreLimits,
  onlyIfOnline = false,
  body = encodeStoredMessage(message),
  /** Called as each script call completes (device indexes into `devices`), to route early. */
  onPart?: (indexes: number[], results: readonly StoreResult[]) => void,
): Promise<StoreResult[]> {
  let batcher = batchers.get(redis);
  if (!batcher) batchers.set(redis, (batcher = new StoreBatcher(redis)));
  return new Promise<StoreResult[]>((resolve, reject) => {
    batcher.add({
      keys,
      app,
      devices,
      message,
      body,
      onlyIfOnline,
      limits,
      onPart,
      results: new Array<StoreResult>(devices.length),
      calls: 0,
      failed: false,
      resolve,
      reject,
    });
  });
}

export async function storeMessage(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  message: StoredMessage,
  limits: StoreLimits,
  onlyIfOnline = false,
): Promise<StoreResult> {
  const [result] = await storeMessageForDevices(redis, keys, app, [device], message, limits, onlyIfOnline);
  return result!;
}

export interface AckResult {
  removed: string[];
  /** Ids the store did not hold (unknown or already acked). */
  unknown: string[];
  /**
   * Ids counted delivered by this call, each once per device: read by the receipt (still in the
   * inbox, above the device's mark) or removed by an ack before any receipt counted them.
   */
  delivered: string[];
}

/** One device's part of an ack call: ids it acknowledged, and the seq its receipt names (0: none). */
export interface AckEntry {
  device: string;
  ids: string[];
  /**
   * Receipt: the device read every push up to this seq on its connection. The caller clamps it
   * to the highest seq written on that connection (a device cannot have read more).
   */
  recv?: number;
}

/**
 * Acknowledges ids and applies receipts of many devices, one script call per hashtag bucket
 * (pgAck); results in input order.
 */
export async function ackMessagesForDevices(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  acks: AckEntry[],
): Promise<AckResult[]> {
  const results: AckResult[] = new Array<AckResult>(acks.length);
  const calls: Promise<void>[] = [];
  for (const group of byBucket(acks, (a) => a.device).values()) {
    for (let start = 0; start < group.length; start += MAX_DEVICES_PER_CALL) {
      const part = group.slice(start, start + MAX_DEVICES_PER_CALL);
      const args: (string | number)[] = [];
      for (const i of part) args.push(keys.deviceMeta(app, acks[i]!.device));
      for (const i of part) args.push(acks[i]!.ids.length, acks[i]!.recv ?? 0);
      for (const i of part) args.push(...acks[i]!.ids);
      calls.push(
        redis.pgAck(part.length, ...args).then((flat) => {
          let at = 0;
          for (const i of part) {
            const r: AckResult = { removed: [], unknown: [], delivered: [] };
            const read = Number(flat[at++]);
            for (let k = 0; k < read; k++) r.delivered.push(String(flat[at++]));
            for (const id of acks[i]!.ids) {
              const flag = flat[at++];
              if (flag === 0) r.unknown.push(id);
              else {
                r.removed.push(id);
                if (flag === 2) r.delivered.push(id);
              }
            }
            results[i] = r;
          }
        }),
      );
    }
  }
  await Promise.all(calls);
  return results;
}

export async function ackMessages(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  ids: string[],
): Promise<AckResult> {
  const [result] = await ackMessagesForDevices(redis, keys, app, [{ device, ids }]);
  return result!;
}

export interface ReplayPage {
  messages: { seq: number; body: string }[];
  expired: number;
  /**
   * Entries whose shared body was gone (bodies.ts): removed from the inbox, not returned. The
   * reader counts and logs them.
   */
  missing?: number;
  /** Entries the page read (returned + missing); a page with fewer than asked is the last. */
  scanned?: number;
}

/** Stored messages with seq > afterSeq, oldest first; expired ones are deleted, not returned. */
export async function readInbox(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  afterSeq: number,
  limit: number,
  now = Date.now(),
): Promise<ReplayPage> {
  const [, inbox, msgs, collapse] = deviceStoreKeys(keys, app, device);
  const [expired, flat] = await redis.pgReplay(inbox, msgs, collapse, now, afterSeq, limit);
  return replayPage(redis, keys, app, device, expired, flat);
}

/**
 * An inbox page from a script's flat answer, references resolved to their bodies (bodies.ts).
 * Entries whose body is gone are removed from the inbox (as an ack would: entry and collapse
 * mapping) before the page is returned, so a reread never finds them again.
 */
async function replayPage(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  expired: unknown,
  flat: unknown[],
): Promise<ReplayPage> {
  const raw: ReplayPage['messages'] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) raw.push({ seq: Number(flat[i]), body: String(flat[i + 1]) });
  const { messages, missing } = await resolveEntries(redis, keys, raw);
  if (missing.length === 0) return { messages, expired: Number(expired) };
  await ackMessages(redis, keys, app, device, missing);
  return { messages, expired: Number(expired), missing: missing.length, scanned: raw.length };
}

export async function inboxSize(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
): Promise<number> {
  return redis.zcard(keys.deviceInbox(app, device));
}

export interface Presence {
  gateway: string;
  session: string;
}

export interface ClaimResult {
  previous?: Presence;
  /** Heartbeat interval learned on earlier connections (ms), if any. */
  learnedHeartbeatMs?: number;
  tags?: string[];
  alias?: string;
  /**
   * The registration the indexes are known to hold (app-index.ts registrationMark), written only
   * when a whole change went through; undefined when none is (a first hello, a change that failed).
   */
  indexed?: string;
  /** The device's sequence counter at the claim: every message at or below it is in the inbox or gone. */
  lastSeq: number;
  /** The first page of the inbox, read at the same instant as the claim. */
  firstPage: ReplayPage;
}

/**
 * Records that `gateway`/`session` now holds the device, stores the tags/alias it announced
 * (undefined: keep the stored ones), and reads the first `limit` inbox messages; returns what
 * was there before.
 */
export async function claimPresence(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  presence: Presence,
  keyTtlMs: number,
  announced: { tags?: string[]; alias?: string | null } = {},
  limit = 100,
  now = Date.now(),
): Promise<ClaimResult> {
  const [meta, inbox, msgs, collapse] = deviceStoreKeys(keys, app, device);
  const [gw, sess, hb, tags, alias, lastSeq, expired, flat, indexed] = await redis.pgClaim(
    meta,
    inbox,
    msgs,
    collapse,
    presence.gateway,
    presence.session,
    keyTtlMs,
    announced.tags ? '1' : '0',
    JSON.stringify(announced.tags ?? []),
    announced.alias !== undefined ? '1' : '0',
    announced.alias ?? '',
    now,
    limit,
  );
  let parsedTags: string[] | undefined;
  if (tags) {
    try {
      const t: unknown = JSON.parse(tags);
      if (Array.isArray(t)) parsedTags = t.filter((x): x is string => typeof x === 'string');
    } catch {
      parsedTags = undefined;
    }
  }
  return {
    previous: gw ? { gateway: gw, session: sess } : undefined,
    learnedHeartbeatMs: hb ? Number(hb) : undefined,
    tags: parsedTags,
    alias: alias || undefined,
    indexed: indexed || undefined,
    lastSeq: Number(lastSeq),
    firstPage: await replayPage(redis, keys, app, device, expired, flat),
  };
}

/** Clears presence if `session` still holds it (a newer session elsewhere is left alone). */
export async function releasePresence(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  session: string,
  learnedHeartbeatMs?: number,
): Promise<boolean> {
  const r = await redis.pgRelease(
    keys.deviceMeta(app, device),
    session,
    learnedHeartbeatMs ? String(learnedHeartbeatMs) : '',
    Date.now(),
  );
  return r === 1;
}

export async function getPresence(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
): Promise<Presence | undefined> {
  const [gw, sess] = await redis.hmget(keys.deviceMeta(app, device), 'gw', 'sess');
  return gw ? { gateway: gw, session: sess ?? '' } : undefined;
}
