import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { StoredMessage } from '../protocol/server-frames.js';
import type { PgRedis } from '../redis/connection.js';
import { deliverMessage } from '../redis/delivery.js';
import type { RedisKeys } from '../redis/keys.js';
import {
  claimIdempotencyKey,
  completeMessageStatus,
  createMessageStatus,
  getMessageStatus,
} from '../redis/messages.js';
import type { PushObserver } from './observer.js';
import type { RouteFn } from './router.js';
import { resolveTarget, type PushTarget } from './target.js';

export interface PushRequest {
  /** Parsed at the edge (parseTarget). */
  to: PushTarget;
  data: unknown;
  ttl: number;
  priority: 'high' | 'normal';
  collapseKey?: string;
}

export interface PushAccepted {
  id: string;
  recipients: number;
  /** True when an earlier request with the same idempotency key already accepted it. */
  duplicate: boolean;
}

export interface AcceptLimits {
  /** Messages kept per device inbox. */
  maxInbox: number;
  /** Lifetime of a device's keys after a store (ms), at least the longest TTL. */
  keyTtlMs: number;
  /** Largest audience of one request. */
  maxRecipients: number;
}

/** The same Idempotency-Key came with another request (target, data, ttl, priority or collapse key). */
export class IdempotencyConflictError extends Error {
  override name = 'IdempotencyConflictError';
  constructor(readonly key: string) {
    super(`Idempotency-Key '${key}' was used for a different request; use a new key for a new message`);
  }
}

/** The first request with this Idempotency-Key is still being accepted; retry after a moment. */
export class IdempotencyInProgressError extends Error {
  override name = 'IdempotencyInProgressError';
  constructor(readonly key: string) {
    super(`a request with Idempotency-Key '${key}' is still being accepted; retry shortly`);
  }
}

/** How long a repeat waits for the first request with its key to finish before answering 409. */
const IDEMPOTENCY_WAIT_MS = 5000;
/** A reservation this old that never finished belongs to a request that died: a repeat finishes it. */
const IDEMPOTENCY_ABANDONED_MS = 30_000;

/** What makes two requests "the same message" for an idempotency key. */
export function requestFingerprint(req: PushRequest): string {
  const canonical = JSON.stringify([req.to.spec, req.data, req.ttl, req.priority, req.collapseKey ?? null]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 22);
}

export function newMessageId(now = Date.now()): string {
  return `${now.toString(36)}${randomBytes(8).toString('hex')}`;
}

/**
 * Accepting a push, the one path every sender takes (the push API; the campaign dispatcher):
 * idempotency -> resolve the target -> message status -> store in every inbox -> route. It
 * answers only when everything it accepted is stored (durable before acknowledged); routing
 * is the router's (which never drops a lost notification silently). Metrics go to the
 * observer, so this knows no program's metrics.
 */
export class PushAcceptor {
  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    private readonly limits: AcceptLimits,
    private readonly route: RouteFn,
    private readonly observer: PushObserver,
    private readonly log: Logger,
  ) {}

  async accept(app: string, req: PushRequest, idempotencyKey?: string): Promise<PushAccepted> {
    let id = newMessageId();
    let duplicate = false;
    if (idempotencyKey) {
      // Reserved atomically before any work. A repeat of the same request waits for the first
      // to finish and answers with its id; a different request under the same key is refused.
      const fingerprint = requestFingerprint(req);
      const first = await claimIdempotencyKey(this.redis, this.keys, app, idempotencyKey, id, fingerprint);
      if (first) {
        // (A reservation written before fingerprints existed has none: treated as the same request.)
        if (first.fingerprint && first.fingerprint !== fingerprint)
          throw new IdempotencyConflictError(idempotencyKey);
        const deadline = Date.now() + IDEMPOTENCY_WAIT_MS;
        for (;;) {
          const status = await getMessageStatus(this.redis, this.keys, first.id);
          if (status?.state === 'accepted')
            return { id: first.id, recipients: status.recipients, duplicate: true };
          if (Date.now() - first.reservedAt > IDEMPOTENCY_ABANDONED_MS) break;
          if (Date.now() > deadline) throw new IdempotencyInProgressError(idempotencyKey);
          await new Promise((r) => setTimeout(r, 50));
        }
        // The first request died mid fan-out: finish it under its id (the same request, by its
        // fingerprint; stores are idempotent by id, so nobody gets it twice from the store).
        id = first.id;
        duplicate = true;
      }
    }
    const recipients = await resolveTarget(this.redis, this.keys, app, req.to, this.limits.maxRecipients);
    const sent = Date.now();
    const message: StoredMessage = {
      id,
      exp: sent + req.ttl * 1000,
      ttl: req.ttl,
      priority: req.priority,
      collapse: req.collapseKey,
      sent,
      data: req.data,
    };
    await createMessageStatus(this.redis, this.keys, {
      id,
      app,
      target: JSON.stringify(req.to.spec),
      createdAt: sent,
      expiresAt: message.exp,
    });
    const counts = await deliverMessage(this.redis, this.keys, app, recipients, message, {
      maxPerDevice: this.limits.maxInbox,
      keyTtlMs: this.limits.keyTtlMs,
      onlyIfOnline: req.ttl === 0, // TTL 0 means now or never
      route: this.route,
      onResult: (r) => this.observer.stored(r),
    });
    await completeMessageStatus(this.redis, this.keys, id, {
      recipients: counts.recipients,
      stored: counts.stored,
      dropped: counts.dropped,
      replaced: counts.replaced,
      evicted: counts.evicted,
    });
    this.log.debug({ id, app, recipients: recipients.length }, 'push accepted');
    return { id, recipients: recipients.length, duplicate };
  }
}
