import type { PgRedis } from './connection.js';
import { deviceStoreKeys, type RedisKeys } from './keys.js';

/**
 * A message as stored in a device's inbox. The body is JSON whose first key is `id`, so the
 * gateway can build a push frame by splicing `"t":"push","seq":N,` in front without parsing.
 */
export interface StoredMessage {
  id: string;
  /** Expiry, ms since epoch. */
  exp: number;
  ttl: number;
  priority: 'high' | 'normal';
  collapse?: string;
  /** When the API accepted it (ms since epoch). */
  sent: number;
  data: unknown;
}

export function encodeStoredMessage(m: StoredMessage): string {
  const { id, exp, ttl, priority, collapse, sent, data } = m;
  return JSON.stringify(
    collapse === undefined
      ? { id, exp, ttl, priority, sent, data }
      : { id, exp, ttl, priority, collapse, sent, data },
  );
}

/** The push frame text for a stored body (see StoredMessage). */
export function pushFrameText(seq: number, body: string): string {
  return `{"t":"push","seq":${seq},${body.slice(1)}`;
}

export interface StoreResult {
  /**
   * 'stored': new inbox entry; 'duplicate': this id was already in the inbox (a retried push),
   * nothing changed; 'offline': only-if-online was asked (TTL 0) and no gateway holds the device.
   */
  outcome: 'stored' | 'duplicate' | 'offline';
  seq: number;
  /** Gateway that holds the device now ('' = offline). */
  gateway: string;
  session: string;
  /** Id of the older message this one replaced through its collapse key. */
  replaced?: string;
  /** Oldest messages dropped because the inbox was full. */
  evicted: number;
  /** Messages in the inbox after this store. */
  inboxSize: number;
}

export interface StoreLimits {
  /** Messages kept per device; the oldest are dropped beyond it. */
  maxPerDevice: number;
  /** How long a device's keys live after the last store (ms); at least the longest TTL. */
  keyTtlMs: number;
}

export async function storeMessage(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  message: StoredMessage,
  limits: StoreLimits,
  onlyIfOnline = false,
  /** encodeStoredMessage(message), when the caller stores one message for many devices. */
  body = encodeStoredMessage(message),
): Promise<StoreResult> {
  const [meta, inbox, msgs, collapse] = deviceStoreKeys(keys, app, device);
  const [stored, seq, gateway, session, replaced, evicted, size] = await redis.pgStore(
    meta,
    inbox,
    msgs,
    collapse,
    message.id,
    body,
    message.collapse ?? '',
    limits.maxPerDevice,
    limits.keyTtlMs,
    onlyIfOnline ? '1' : '0',
  );
  return {
    outcome: stored === 1 ? 'stored' : stored === 2 ? 'offline' : 'duplicate',
    seq: Number(seq),
    gateway,
    session,
    replaced: replaced || undefined,
    evicted: Number(evicted),
    inboxSize: Number(size),
  };
}

/** Acknowledges ids; returns the ids the store did not hold (unknown or already acked). */
export async function ackMessages(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  ids: string[],
): Promise<{ removed: string[]; unknown: string[] }> {
  const [, inbox, msgs, collapse] = deviceStoreKeys(keys, app, device);
  const flags = await redis.pgAck(inbox, msgs, collapse, ...ids);
  const removed: string[] = [];
  const unknown: string[] = [];
  ids.forEach((id, i) => (flags[i] === 1 ? removed : unknown).push(id));
  return { removed, unknown };
}

export interface ReplayPage {
  messages: { seq: number; body: string }[];
  expired: number;
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
  return replayPage(expired, flat);
}

function replayPage(expired: unknown, flat: unknown[]): ReplayPage {
  const messages: ReplayPage['messages'] = [];
  for (let i = 0; i + 1 < flat.length; i += 2)
    messages.push({ seq: Number(flat[i]), body: String(flat[i + 1]) });
  return { messages, expired: Number(expired) };
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
  const [gw, sess, hb, tags, alias, lastSeq, expired, flat] = await redis.pgClaim(
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
    lastSeq: Number(lastSeq),
    firstPage: replayPage(expired, flat),
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
