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
import {
  encodeStoredMessage,
  storeMessageForDevices,
  type StoredMessage,
} from '../common/redis/offline-store.js';
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

/** One routed delivery: [app, device, seq, sent, stored body]. */
export type RoutedDelivery = [string, string, number, number, string];

export function newMessageId(now = Date.now()): string {
  return `${now.toString(36)}${randomBytes(8).toString('hex')}`;
}

/**
 * Accepting a push: resolve the audience, store the message in every recipient's inbox (the
 * durable step: from here a gateway crash loses nothing), then route a notification to the
 * gateway holding each online device. Devices on this gateway are served in-process.
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
    const body = encodeStoredMessage(message);
    const counts = { recipients: recipients.length, stored: 0, dropped: 0, replaced: 0, evicted: 0 };
    const limits = { maxPerDevice: this.opts.maxInbox, keyTtlMs: this.opts.keyTtlMs };
    // One pipelined stream of store scripts (one per hashtag bucket of recipients); each part is
    // routed as soon as it is durable, so sockets are written while Redis works on the rest.
    // TTL 0 means now or never: store only for devices connected right now.
    await storeMessageForDevices(
      this.redis,
      this.keys,
      app,
      recipients,
      message,
      limits,
      req.ttl === 0,
      body,
      (part, results) => {
        const routes = new Map<string, RoutedDelivery[]>();
        for (const i of part) {
          const r = results[i]!;
          const device = recipients[i]!;
          if (r.outcome === 'offline') {
            counts.dropped++;
            this.metrics.stored.inc({ outcome: 'offline_dropped' });
            continue;
          }
          if (r.outcome === 'duplicate') this.metrics.stored.inc({ outcome: 'duplicate' });
          else {
            counts.stored++;
            this.metrics.stored.inc({ outcome: 'stored' });
            this.metrics.offlineQueue.observe(r.inboxSize);
          }
          if (r.replaced) {
            counts.replaced++;
            this.metrics.stored.inc({ outcome: 'collapsed' });
          }
          if (r.evicted) {
            counts.evicted += r.evicted;
            this.metrics.stored.inc({ outcome: 'evicted' }, r.evicted);
          }
          if (r.gateway) {
            let list = routes.get(r.gateway);
            if (!list) routes.set(r.gateway, (list = []));
            list.push([app, device, r.seq, sent, body]);
          }
        }
        for (const [gateway, deliveries] of routes) this.route(gateway, deliveries);
      },
    );
    await completeMessageStatus(this.redis, this.keys, id, counts);
    this.log.debug({ id, app, recipients: recipients.length }, 'push accepted');
    return { id, recipients: recipients.length, duplicate };
  }
}
