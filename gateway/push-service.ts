import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import { resolveTarget, type PushTarget } from '../common/redis/app-index.js';
import type { PgRedis } from '../common/redis/connection.js';
import type { RedisKeys } from '../common/redis/keys.js';
import {
  claimIdempotencyKey,
  completeMessageStatus,
  createMessageStatus,
  getMessageStatus,
} from '../common/redis/messages.js';
import { deliverMessage, type RoutedDelivery } from '../common/redis/delivery.js';
import type { StoredMessage } from '../common/protocol/server-frames.js';
import type { GatewayMetrics } from './metrics.js';

export interface PushRequest {
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

export function newMessageId(now = Date.now()): string {
  return `${now.toString(36)}${randomBytes(8).toString('hex')}`;
}

/**
 * Accepting a push: idempotency, the audience, message status, and deliverMessage (store in
 * every inbox, then route). Devices on this gateway are served in-process.
 */
export class PushService {
  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    private readonly metrics: GatewayMetrics,
    private readonly opts: { gatewayId: string; maxInbox: number; keyTtlMs: number; maxRecipients: number },
    private readonly route: (gateway: string, deliveries: RoutedDelivery[]) => void,
    private readonly log: Logger,
  ) {}

  async push(app: string, req: PushRequest, idempotencyKey?: string): Promise<PushAccepted> {
    let id = newMessageId();
    let duplicate = false;
    if (idempotencyKey) {
      const existing = await claimIdempotencyKey(this.redis, this.keys, app, idempotencyKey, id);
      if (existing) {
        const status = await getMessageStatus(this.redis, this.keys, existing);
        if (status?.state === 'accepted')
          return { id: existing, recipients: status.recipients, duplicate: true };
        // The first request died mid fan-out (or is still running): finish it under the same
        // id; stores are idempotent by id, so nobody gets it twice from the store.
        id = existing;
        duplicate = true;
      }
    }
    const recipients = await resolveTarget(this.redis, this.keys, app, req.to, this.opts.maxRecipients);
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
      target: JSON.stringify(req.to),
      createdAt: sent,
      expiresAt: message.exp,
    });
    const counts = await deliverMessage(this.redis, this.keys, app, recipients, message, {
      maxPerDevice: this.opts.maxInbox,
      keyTtlMs: this.opts.keyTtlMs,
      onlyIfOnline: req.ttl === 0, // TTL 0 means now or never
      route: this.route,
      onResult: (r) => {
        if (r.outcome === 'offline') return this.metrics.stored.inc({ outcome: 'offline_dropped' });
        this.metrics.stored.inc({ outcome: r.outcome });
        if (r.outcome === 'stored') this.metrics.offlineQueue.observe(r.inboxSize);
        if (r.replaced) this.metrics.stored.inc({ outcome: 'collapsed' });
        if (r.evicted) this.metrics.stored.inc({ outcome: 'evicted' }, r.evicted);
      },
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
