import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';

/**
 * Message status (one hash per API message) and idempotency keys.
 * state: 'storing' while the fan-out writes inboxes, then 'accepted'.
 * Counters: recipients, stored (new inbox entries), duplicate (already stored by a retry),
 * dropped (ttl 0 and offline), sent (frames written to a device, resends included),
 * acked (devices that acknowledged), replaced (devices where a newer message with the same
 * collapse key replaced this one before delivery), evicted (devices whose full inbox dropped this
 * one for newer messages; both written by the newer message's store, recordFates, on this
 * message's own status), deferred (recipients held back by the app's rate limit), released (of
 * those, stored since), expired (of those, whose TTL ran out before their turn), capped (of the
 * deferred, held by their device's daily cap for the next UTC day: reason DeviceCap), capRefused
 * (recipients refused by their device's daily cap; not part of the message's audience after).
 * `delivery` is derived: deferred while any recipient waits for the rate limit, then stored,
 * sent (a frame went to a device), acked (every recipient acked) or expired (TTL passed first).
 */
export type DeliveryState = 'deferred' | 'stored' | 'sent' | 'acked' | 'expired';

export interface MessageStatus {
  id: string;
  app: string;
  target: string;
  state: 'storing' | 'accepted';
  createdAt: number;
  expiresAt: number;
  recipients: number;
  stored: number;
  dropped: number;
  sent: number;
  acked: number;
  replaced: number;
  evicted: number;
  deferred: number;
  released: number;
  expired: number;
  capped: number;
  capRefused: number;
  delivery: DeliveryState;
}

export type MessageCounter =
  | 'recipients'
  | 'stored'
  | 'dropped'
  | 'sent'
  | 'acked'
  | 'replaced'
  | 'evicted'
  | 'deferred'
  | 'released'
  | 'expired'
  | 'capped'
  | 'capRefused';

/** Where a message is on its way (see MessageStatus.delivery). */
export function deliveryState(
  s: Pick<
    MessageStatus,
    'recipients' | 'deferred' | 'released' | 'expired' | 'sent' | 'acked' | 'expiresAt'
  > &
    Partial<Pick<MessageStatus, 'capRefused'>>,
  now = Date.now(),
): DeliveryState {
  const audience = s.recipients - (s.capRefused ?? 0);
  if (audience > 0 && s.acked >= audience) return 'acked';
  if (s.deferred > s.released + s.expired) return now > s.expiresAt ? 'expired' : 'deferred';
  if (audience > 0 && s.expired >= audience) return 'expired';
  if (now > s.expiresAt) return 'expired';
  return s.sent > 0 ? 'sent' : 'stored';
}
const STATUS_MIN_TTL_MS = 24 * 3600_000;

export async function createMessageStatus(
  redis: PgRedis,
  keys: RedisKeys,
  s: { id: string; app: string; target: string; createdAt: number; expiresAt: number },
) {
  const key = keys.messageStatus(s.id);
  await redis
    .multi()
    .hsetnx(key, 'id', s.id)
    .hsetnx(key, 'app', s.app)
    .hsetnx(key, 'target', s.target)
    .hsetnx(key, 'state', 'storing')
    .hsetnx(key, 'createdAt', String(s.createdAt))
    .hsetnx(key, 'expiresAt', String(s.expiresAt))
    .pexpire(key, Math.max(STATUS_MIN_TTL_MS, s.expiresAt - s.createdAt + 3600_000))
    .exec();
}

export async function completeMessageStatus(
  redis: PgRedis,
  keys: RedisKeys,
  id: string,
  counts: Partial<Record<MessageCounter, number>>,
) {
  const key = keys.messageStatus(id);
  const m = redis.multi();
  for (const [k, v] of Object.entries(counts)) m.hset(key, k, String(v));
  m.hset(key, 'state', 'accepted');
  await m.exec();
}

/**
 * Records on each older message what a newer one did to it (one increment per device): the fate
 * belongs to the message it happened to, so an app asking about it learns it.
 */
export async function recordFates(
  redis: PgRedis,
  keys: RedisKeys,
  fates: { replaced: readonly string[]; evicted: readonly string[] },
): Promise<void> {
  const tally = (ids: readonly string[]) => {
    const m = new Map<string, number>();
    for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
    return m;
  };
  const calls: Promise<number>[] = [];
  for (const [counter, ids] of [
    ['replaced', fates.replaced],
    ['evicted', fates.evicted],
  ] as const) {
    for (const [id, n] of tally(ids)) calls.push(redis.pgCountFate(keys.messageStatus(id), counter, n));
  }
  await Promise.all(calls);
}

export function countMessage(redis: PgRedis, keys: RedisKeys, id: string, counter: MessageCounter, by = 1) {
  return redis.hincrby(keys.messageStatus(id), counter, by);
}

export async function getMessageStatus(
  redis: PgRedis,
  keys: RedisKeys,
  id: string,
): Promise<MessageStatus | undefined> {
  const h = await redis.hgetall(keys.messageStatus(id));
  if (!h.id) return undefined;
  const num = (k: string) => Number(h[k] ?? 0);
  const s = {
    id: h.id,
    app: h.app ?? '',
    target: h.target ?? '',
    state: h.state === 'accepted' ? 'accepted' : 'storing',
    createdAt: num('createdAt'),
    expiresAt: num('expiresAt'),
    recipients: num('recipients'),
    stored: num('stored'),
    dropped: num('dropped'),
    sent: num('sent'),
    acked: num('acked'),
    replaced: num('replaced'),
    evicted: num('evicted'),
    deferred: num('deferred'),
    released: num('released'),
    expired: num('expired'),
    capped: num('capped'),
    capRefused: num('capRefused'),
  };
  return { ...s, delivery: deliveryState(s) } as MessageStatus;
}

export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

/** What an idempotency key is bound to: the message id, the request's fingerprint, when. */
export interface IdempotencyReservation {
  id: string;
  fingerprint: string;
  reservedAt: number;
}

/**
 * Reserves an idempotency key for `id` and the request's `fingerprint`, atomically (SET NX)
 * and before any work. Returns undefined when this call reserved it, else the reservation that
 * was there first (the caller compares fingerprints and waits for, or answers with, that one).
 */
export async function claimIdempotencyKey(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  key: string,
  id: string,
  fingerprint: string,
  now = Date.now(),
): Promise<IdempotencyReservation | undefined> {
  const k = keys.idempotency(app, key);
  const ok = await redis.set(k, `${id} ${fingerprint} ${now}`, 'PX', IDEMPOTENCY_TTL_MS, 'NX');
  if (ok === 'OK') return undefined;
  const [existingId = '', existingFp = '', at = '0'] = ((await redis.get(k)) ?? '').split(' ');
  return { id: existingId, fingerprint: existingFp, reservedAt: Number(at) };
}
