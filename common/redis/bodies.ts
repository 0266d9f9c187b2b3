import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';
import { bodyRefId, type StoredMessage } from '../protocol/server-frames.js';

/**
 * Message bodies stored once (issue 11 "Storage", issue 15). A message for a large audience
 * (at least STORE_ONCE_RECIPIENTS devices in one store, or any store whose sender asks, e.g.
 * the campaign dispatcher) is written once to `keys.messageBody(id)`, and each device's inbox
 * entry refers to it (server-frames encodeBodyRef: id, exp, collapse; the seq is the inbox
 * score). The body key lives until the message expires plus BODY_GRACE_MS: as long as the
 * longest TTL that needs it (every entry of one message shares its expiry; a later store of the
 * same id, a retry or a rate-limit release, writes it again and extends it).
 *
 * Readers (replay, resync) resolve references here, through an in-process cache keyed by
 * message id, so a fan-out's replays fetch a body once per process. The body key is in its own
 * slot ({b:<id>}): a separate read, never inside an inbox script. A reference whose body is
 * gone (Redis evicted or lost it) cannot be delivered: the entry is removed from the inbox and
 * counted by the caller (ReplayPage.missing), never a crash and never an inbox stuck on it.
 */

/** Recipients of one store from which the body is stored once (fewer: copied into each inbox). */
export const STORE_ONCE_RECIPIENTS = 32;
/** How long a body outlives its message's expiry (clock skew between writers and readers). */
export const BODY_GRACE_MS = 60_000;

/** Bodies kept per process, and their total size; the oldest are forgotten first. */
const CACHE_ENTRIES = 4096;
const CACHE_BYTES = 32 * 2 ** 20;

interface Cached {
  body: string;
  /** Forget after (ms): the message's expiry plus the grace. */
  until: number;
}

export class BodyCache {
  private readonly entries = new Map<string, Cached>();
  private bytes = 0;
  private readonly inflight = new Map<string, Promise<string | null>>();

  constructor(
    private readonly maxEntries = CACHE_ENTRIES,
    private readonly maxBytes = CACHE_BYTES,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(id: string, now = Date.now()): string | undefined {
    const c = this.entries.get(id);
    if (!c) return undefined;
    if (c.until < now) {
      this.delete(id, c);
      return undefined;
    }
    return c.body;
  }

  put(id: string, body: string, until: number): void {
    const old = this.entries.get(id);
    if (old) this.delete(id, old);
    this.entries.set(id, { body, until });
    this.bytes += body.length;
    for (const [oid, c] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.delete(oid, c);
    }
  }

  private delete(id: string, c: Cached) {
    this.entries.delete(id);
    this.bytes -= c.body.length;
  }

  /** The bodies of `ids` (null: the body key is gone), one GET per id not cached or in flight. */
  async resolve(redis: PgRedis, keys: RedisKeys, ids: Iterable<string>): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    const waits: Promise<void>[] = [];
    for (const id of ids) {
      if (out.has(id)) continue;
      const hit = this.get(id);
      if (hit !== undefined) {
        out.set(id, hit);
        continue;
      }
      let p = this.inflight.get(id);
      if (!p) {
        p = redis
          .get(keys.messageBody(id))
          .then((body) => {
            if (body !== null) this.put(id, body, untilOf(body));
            return body;
          })
          .finally(() => this.inflight.delete(id));
        this.inflight.set(id, p);
      }
      waits.push(p.then((body) => void out.set(id, body)));
    }
    await Promise.all(waits);
    return out;
  }
}

/** When a cached body may be forgotten: its `exp` (read without parsing) plus the grace. */
function untilOf(body: string): number {
  const m = /"exp":(\d+)/.exec(body);
  return (m ? Number(m[1]) : Date.now()) + BODY_GRACE_MS;
}

const caches = new WeakMap<PgRedis, BodyCache>();

/** The process's body cache for one Redis client. */
export function bodyCacheOf(redis: PgRedis): BodyCache {
  let c = caches.get(redis);
  if (!c) caches.set(redis, (c = new BodyCache()));
  return c;
}

/** Writes a message body once (before any inbox entry refers to it) and keeps it in the cache. */
export async function writeSharedBody(
  redis: PgRedis,
  keys: RedisKeys,
  message: Pick<StoredMessage, 'id' | 'exp'>,
  body: string,
  now = Date.now(),
): Promise<void> {
  const until = message.exp + BODY_GRACE_MS;
  await redis.set(keys.messageBody(message.id), body, 'PX', Math.max(1, until - now));
  bodyCacheOf(redis).put(message.id, body, until);
}

/** Messages of an inbox page: [seq, entry] as stored (bodies or references). */
export interface RawEntry {
  seq: number;
  body: string;
}

/**
 * Replaces references in `entries` by their bodies. Returns the resolved entries (in order) and
 * the ids whose body is gone (their entries are left out; the caller removes them).
 */
export async function resolveEntries(
  redis: PgRedis,
  keys: RedisKeys,
  entries: RawEntry[],
): Promise<{ messages: RawEntry[]; missing: string[] }> {
  const refs = new Map<number, string>();
  entries.forEach((e, i) => {
    const id = bodyRefId(e.body);
    if (id !== undefined) refs.set(i, id);
  });
  if (refs.size === 0) return { messages: entries, missing: [] };
  const bodies = await bodyCacheOf(redis).resolve(redis, keys, refs.values());
  const messages: RawEntry[] = [];
  const missing: string[] = [];
  entries.forEach((e, i) => {
    const id = refs.get(i);
    if (id === undefined) return void messages.push(e);
    const body = bodies.get(id);
    if (body == null) missing.push(id);
    else messages.push({ seq: e.seq, body });
  });
  return { messages, missing };
}
