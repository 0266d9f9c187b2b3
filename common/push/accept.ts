import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import { encodeStoredMessage, type StoredMessage } from '../protocol/server-frames.js';
import type { AppRateLimiter } from '../ratelimit/app-limiter.js';
import { DeferredQueueFullError, type AdmitResult } from '../ratelimit/app-limit.js';
import { DeviceCapFullError } from '../ratelimit/device-cap.js';
import type { PgRedis } from '../redis/connection.js';
import { deliverMessage } from '../redis/delivery.js';
import type { RedisKeys } from '../redis/keys.js';
import {
  claimIdempotencyKey,
  completeMessageStatus,
  recordFates,
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
  /** 'deferred' when the app's policy holds some recipients back (rate limit or daily cap; released later). */
  state: 'accepted' | 'deferred';
  /** Recipients held back by the policy (rate limit and daily cap together). */
  deferred?: number;
  /** Of those, recipients held by their device's daily cap until the next UTC day (reason DeviceCap). */
  deviceCapped?: number;
  /** Recipients refused by their device's daily cap: the device already holds a whole day's allowance. */
  deviceCapRefused?: number;
  /** Estimated time the last deferred recipient gets it (ISO 8601). */
  estimatedSendAt?: string;
  /** The app's limit as admission saw it (for the RateLimit-* headers); absent without a policy. */
  rateLimit?: Pick<AdmitResult, 'limit' | 'remaining' | 'resetSeconds'> & { policy?: string; burst: number };
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
    /** The per-app limits of RateLimitPolicies (common/ratelimit); none = no limits. */
    private readonly limiter?: AppRateLimiter,
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
            return {
              id: first.id,
              recipients: status.recipients,
              duplicate: true,
              state: status.delivery === 'deferred' ? 'deferred' : 'accepted',
            };
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
    // The app's rate limit (RateLimitPolicy): recipients over it are queued durably and
    // released later (through storeReleased); only the rest are stored now.
    const body = encodeStoredMessage(message);
    // A limited app's admission and stores are its downstream outcomes (adaptive throttling
    // measures them from here: a stalled Redis shows in the first command, the admission).
    const t0 = performance.now();
    const outcome = (n: number, o: 'ok' | 'error') =>
      this.limiter?.adaptive.record(app, n, o, performance.now() - t0);
    const admitted = await this.limiter?.admit(app, recipients, message, body).catch(async (err: unknown) => {
      if (!(err instanceof DeferredQueueFullError || err instanceof DeviceCapFullError))
        outcome(recipients.length, 'error');
      // Refused (queue full, or every recipient's daily cap): nothing was queued or stored;
      // forget the id so a retry starts afresh.
      await this.redis.del(this.keys.messageStatus(id)).catch(() => {});
      if (idempotencyKey) await this.redis.del(this.keys.idempotency(app, idempotencyKey)).catch(() => {});
      throw err;
    });
    const goNow = admitted ? admitted.now.map((i) => recipients[i]!) : recipients;
    const counts = await this.storeReleased(app, goNow, message).then(
      (c) => {
        if (admitted) outcome(recipients.length, 'ok');
        return c;
      },
      (err: unknown) => {
        if (admitted) outcome(recipients.length, 'error');
        throw err;
      },
    );
    const deferred = (admitted?.deferred ?? 0) + (admitted?.capped ?? 0);
    await completeMessageStatus(this.redis, this.keys, id, {
      recipients: recipients.length,
      // A retry after a crash finds some inboxes already holding it: stored all the same.
      stored: counts.stored + counts.duplicate,
      dropped: counts.dropped,
      ...(deferred ? { deferred } : {}),
      ...(admitted?.capped ? { capped: admitted.capped } : {}),
      ...(admitted?.capRefused ? { capRefused: admitted.capRefused } : {}),
    });
    this.log.debug({ id, app, recipients: recipients.length, deferred }, 'push accepted');
    const cfg = admitted && this.limiter?.configs.get(app);
    return {
      id,
      recipients: recipients.length,
      duplicate,
      state: deferred ? 'deferred' : 'accepted',
      ...(deferred && admitted
        ? {
            deferred,
            estimatedSendAt: new Date(Math.max(admitted.releaseAt, admitted.capReleaseAt)).toISOString(),
          }
        : {}),
      ...(admitted?.capped ? { deviceCapped: admitted.capped } : {}),
      ...(admitted?.capRefused ? { deviceCapRefused: admitted.capRefused } : {}),
      ...(admitted
        ? {
            rateLimit: {
              limit: admitted.limit,
              remaining: admitted.remaining,
              resetSeconds: admitted.resetSeconds,
              policy: cfg ? cfg.policy : undefined,
              burst: cfg ? cfg.burst : admitted.limit,
            },
          }
        : {}),
    };
  }

  /**
   * A push of a limited app failed downstream before it reached accept() (storage unavailable,
   * answered 503): one error outcome for the app's adaptive throttling (a no-op without a policy).
   */
  downstreamFailed(app: string, recipients = 1): void {
    this.limiter?.adaptive.record(app, recipients, 'error', 0);
  }

  /**
   * One page of an already resolved audience under a message id the caller owns (the campaign
   * dispatcher: one id per campaign, the audience snapshotted and paged by the caller): the
   * app's rate limit, then store-then-route for what may go now. The rest is queued durably by
   * the limiter and released later (never dropped). Idempotent by message id: a page sent again
   * after a crash is a duplicate in every inbox that has it. Throws DeferredQueueFullError (nothing
   * queued or stored) when the app's deferred queue is full.
   * The per-device daily caps apply as to any push: `deferred` counts the recipients held for the
   * next UTC day too (`capped`), `capRefused` the ones whose device already holds a day's
   * allowance (a page whose every recipient is refused is not an error: they are reported).
   * `releaseAt` is the app rate limit's estimate alone (0 when only the cap held recipients): a
   * caller pacing itself by it must not wait for midnight.
   */
  async acceptPage(
    app: string,
    devices: string[],
    message: StoredMessage,
    body = encodeStoredMessage(message),
  ): Promise<{
    stored: number;
    duplicate: number;
    dropped: number;
    deferred: number;
    releaseAt: number;
    capped: number;
    capRefused: number;
  }> {
    const t0 = performance.now();
    const outcome = (o: 'ok' | 'error') =>
      this.limiter?.adaptive.record(app, devices.length, o, performance.now() - t0);
    let admitted;
    try {
      admitted = await this.limiter?.admit(app, devices, message, body);
    } catch (err) {
      if (err instanceof DeviceCapFullError)
        return {
          stored: 0,
          duplicate: 0,
          dropped: 0,
          deferred: 0,
          releaseAt: 0,
          capped: 0,
          capRefused: devices.length,
        };
      if (!(err instanceof DeferredQueueFullError)) outcome('error');
      throw err;
    }
    // One body for every page of the campaign (bodies.ts), however small the page.
    const counts = await this.storeReleased(
      app,
      admitted ? admitted.now.map((i) => devices[i]!) : devices,
      message,
      { storeOnce: true },
    ).then(
      (c) => {
        if (admitted) outcome('ok');
        return c;
      },
      (err: unknown) => {
        if (admitted) outcome('error');
        throw err;
      },
    );
    return {
      stored: counts.stored,
      duplicate: counts.duplicate,
      dropped: counts.dropped,
      deferred: (admitted?.deferred ?? 0) + (admitted?.capped ?? 0),
      releaseAt: admitted?.releaseAt ?? 0,
      capped: admitted?.capped ?? 0,
      capRefused: admitted?.capRefused ?? 0,
    };
  }

  /**
   * Store then route: the step every message takes once it may go, at acceptance or when the
   * rate limit releases it (the limiter's releaser calls this). `storeOnce`: write the body once
   * and refer to it from each inbox even for a small page (a campaign's pages: one message, many
   * pages); large audiences get that anyway (common/redis/bodies.ts).
   */
  async storeReleased(
    app: string,
    devices: string[],
    message: StoredMessage,
    options: { storeOnce?: boolean } = {},
  ) {
    const counts = await deliverMessage(this.redis, this.keys, app, devices, message, {
      storeOnce: options.storeOnce,
      maxPerDevice: this.limits.maxInbox,
      keyTtlMs: this.limits.keyTtlMs,
      onlyIfOnline: message.ttl === 0, // TTL 0 means now or never
      route: this.route,
      onResult: (r) => this.observer.stored(r),
    });
    // What this message did to older ones is recorded on theirs; it does not hold up the answer.
    void recordFates(this.redis, this.keys, {
      replaced: counts.replacedIds,
      evicted: counts.evictedIds,
      readGone: counts.readGoneIds,
    }).catch((err: Error) =>
      this.log.warn({ id: message.id, err: err.message }, 'recording replaced/evicted fates failed'),
    );
    return counts;
  }
}
