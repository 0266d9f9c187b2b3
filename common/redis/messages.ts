import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';

/**
 * Message status (one hash per API message) and idempotency keys.
 * state: 'storing' while the fan-out writes inboxes, then 'accepted'.
 *
 * Counters as written (per recipient device unless said): recipients; at acceptance each
 * recipient is exactly one of stored (its inbox holds the message; a retry's duplicates count
 * here too), dropped (TTL 0 and not online), deferred (held back by the app's rate limit or its
 * device's daily cap; `capped` says how many of them by the cap) or capRefused (refused by its
 * device's daily cap: not part of the message's audience after); of the deferred, released
 * (stored since, by a releaser) or counted expired (TTL ran out in the queue); of those stored,
 * acked (the device acknowledged it), replaced (a newer message with the same collapse key took
 * its place) or evicted (a full inbox dropped it for newer ones) — the last two written by the
 * newer message's store (recordFates) on this message's own status. sent counts push frames
 * written to devices, resends included (not per recipient).
 * delivered (a milestone, not a state of the partition): recipients whose device read the
 * message, acked ones included, each once. Written by the gateways' ack batches (pgAck): a
 * receipt (protocol `recv`) counts the inbox entries up to the device's receipt mark once, and
 * an ack of an entry the mark does not cover counts it too (a device that acks has read it).
 * readGone (internal): recipients that read it and then lost it to a replace or an eviction
 * before acking (recordFates, from pgStore), so waiting.delivered counts only what is still in
 * an inbox.
 *
 * What a reader gets (recipientStates): every recipient in exactly one state, so
 *   recipients = waiting.deferred + waiting.inbox + acked + expired + replaced + evicted
 *                + dropped + capRefused
 * at any time. An inbox entry's TTL is the message's (expiresAt): once the clock passes it no
 * gateway sends it any more, so every recipient not acked, replaced, evicted, dropped or refused
 * by then is expired, whether or not a gateway has seen the entry since.
 */
export type DeliveryState = 'deferred' | 'stored' | 'sent' | 'delivered' | 'acked' | 'expired';

/** Where the recipients are: the partition the counts add up to (see recipientStates). */
export interface RecipientStates {
  waiting: {
    /** Held back by the app's rate limit or the device's daily cap, not yet released (before expiresAt). */
    deferred: number;
    /** In the inbox, not yet acked, replaced or evicted (before expiresAt). */
    inbox: number;
    /** Of `inbox`, read by the device (a receipt) but not acked yet; not a state of its own. */
    delivered: number;
  };
  acked: number;
  expired: number;
  replaced: number;
  evicted: number;
  dropped: number;
  capRefused: number;
}

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
  /** Recipients whose device read it (receipt or ack), acked ones included: a milestone. */
  delivered: number;
  acked: number;
  replaced: number;
  evicted: number;
  deferred: number;
  released: number;
  expired: number;
  capped: number;
  capRefused: number;
  /** Per recipient: recipients = waiting.deferred + waiting.inbox + acked + expired + replaced + evicted + dropped + capRefused. */
  waiting: RecipientStates['waiting'];
  delivery: DeliveryState;
}

type Counts = Pick<
  MessageStatus,
  | 'recipients'
  | 'stored'
  | 'dropped'
  | 'delivered'
  | 'acked'
  | 'replaced'
  | 'evicted'
  | 'deferred'
  | 'released'
  | 'expired'
  | 'capRefused'
  | 'expiresAt'
> & { readGone?: number };

/**
 * Every recipient in exactly one state, from the counters (see the comment at the top). Before
 * expiresAt the waiting ones are deferred - released - expired (in a queue) and stored +
 * released - acked - replaced - evicted (in an inbox); after it they are expired. Of those in an
 * inbox, delivered - acked - readGone have been read (at most all of them). A counter a
 * concurrent writer has not finished never makes a state negative.
 */
export function recipientStates(s: Counts, now = Date.now()): RecipientStates {
  const settled = {
    acked: s.acked,
    replaced: s.replaced,
    evicted: s.evicted,
    dropped: s.dropped,
    capRefused: s.capRefused,
  };
  if (now > s.expiresAt) {
    const resolved = s.acked + s.replaced + s.evicted + s.dropped + s.capRefused;
    return {
      waiting: { deferred: 0, inbox: 0, delivered: 0 },
      ...settled,
      expired: Math.max(0, s.recipients - resolved),
    };
  }
  const inbox = Math.max(0, s.stored + s.released - s.acked - s.replaced - s.evicted);
  return {
    waiting: {
      deferred: Math.max(0, s.deferred - s.released - s.expired),
      inbox,
      delivered: Math.min(inbox, Math.max(0, s.delivered - s.acked - (s.readGone ?? 0))),
    },
    ...settled,
    expired: s.expired,
  };
}

export type MessageCounter =
  | 'recipients'
  | 'stored'
  | 'dropped'
  | 'sent'
  | 'delivered'
  | 'acked'
  | 'replaced'
  | 'evicted'
  | 'readGone'
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
    Partial<Pick<MessageStatus, 'capRefused' | 'delivered'>>,
  now = Date.now(),
): DeliveryState {
  // The message as a whole: its furthest-behind recipients first (see recipientStates for each).
  const audience = s.recipients - (s.capRefused ?? 0);
  if (audience > 0 && s.acked >= audience) return 'acked';
  // Every recipient read it (a milestone: it stays true after expiresAt).
  if (audience > 0 && (s.delivered ?? 0) >= audience) return 'delivered';
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
  await redis.pgStatusCreate(
    keys.messageStatus(s.id),
    Math.max(STATUS_MIN_TTL_MS, s.expiresAt - s.createdAt + 3600_000),
    ...['id', s.id, 'app', s.app, 'target', s.target, 'state', 'storing'],
    ...['createdAt', String(s.createdAt), 'expiresAt', String(s.expiresAt)],
  );
}

export async function completeMessageStatus(
  redis: PgRedis,
  keys: RedisKeys,
  id: string,
  counts: Partial<Record<MessageCounter, number>>,
) {
  // One HSET of every field: atomic without a MULTI.
  const fields: string[] = [];
  for (const [k, v] of Object.entries(counts)) fields.push(k, String(v));
  await redis.hset(keys.messageStatus(id), ...fields, 'state', 'accepted');
}

/**
 * Records on each older message what a newer one did to it (one increment per device): the fate
 * belongs to the message it happened to, so an app asking about it learns it.
 */
export async function recordFates(
  redis: PgRedis,
  keys: RedisKeys,
  fates: { replaced: readonly string[]; evicted: readonly string[]; readGone?: readonly string[] },
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
    ['readGone', fates.readGone ?? []],
  ] as const) {
    for (const [id, n] of tally(ids)) calls.push(redis.pgIncrIfExists(keys.messageStatus(id), counter, n));
  }
  await Promise.all(calls);
}

/** Adds to a message's counter while its status exists: a count after it expired makes no key (it would have no TTL). */
export function countMessage(redis: PgRedis, keys: RedisKeys, id: string, counter: MessageCounter, by = 1) {
  return redis.pgIncrIfExists(keys.messageStatus(id), counter, by);
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
    delivered: num('delivered'),
    acked: num('acked'),
    replaced: num('replaced'),
    evicted: num('evicted'),
    deferred: num('deferred'),
    released: num('released'),
    expired: num('expired'),
    capped: num('capped'),
    capRefused: num('capRefused'),
  };
  const now = Date.now();
  const states = recipientStates({ ...s, readGone: num('readGone') }, now);
  return {
    ...s,
    expired: states.expired,
    waiting: states.waiting,
    delivery: deliveryState(s, now),
  } as MessageStatus;
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
