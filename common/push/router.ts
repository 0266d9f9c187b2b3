import type { PgRedis } from '../redis/connection.js';
import { publishToGateway, type RoutedDelivery } from '../redis/delivery.js';
import type { RedisKeys } from '../redis/keys.js';
import type { PushObserver } from './observer.js';

/** Hands stored messages' notifications to the gateway that holds each device. */
export type RouteFn = (gateway: string, deliveries: RoutedDelivery[]) => void;

export interface RouterOptions {
  /** How often lost notifications are retried (as one resync notice per gateway). */
  sweepIntervalMs?: number;
  /** Devices kept per gateway for the sweep; beyond it they are counted abandoned. */
  maxSweepDevices?: number;
}

/**
 * Routes notifications over each gateway's pub/sub channel. The inbox is the truth and a
 * notification only makes delivery immediate, but a lost one is not ignored: a failed publish
 * is reported, and its devices are kept (deduplicated, bounded per gateway) and swept: once a
 * second the router publishes one resync notice per gateway listing them, and that gateway
 * rereads their inboxes (in seq order, so nothing is skipped or duplicated), until the notice
 * goes through.
 */
export class PublishRouter {
  private readonly lost = new Map<string, Set<string>>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private readonly sweepIntervalMs: number;
  private readonly maxSweepDevices: number;

  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    private readonly observer: PushObserver,
    opts: RouterOptions = {},
  ) {
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 1000;
    this.maxSweepDevices = opts.maxSweepDevices ?? 10_000;
  }

  readonly route: RouteFn = (gateway, deliveries) => {
    publishToGateway(this.redis, this.keys, gateway, { d: deliveries }).catch((err: unknown) => {
      this.observer.routeFailed(gateway, deliveries.length, err);
      this.keep(gateway, deliveries);
    });
  };

  /** Devices whose notifications wait for the sweep, per gateway (for tests and status). */
  pending(): Map<string, number> {
    return new Map([...this.lost].map(([g, s]) => [g, s.size]));
  }

  private keep(gateway: string, deliveries: RoutedDelivery[]) {
    let devices = this.lost.get(gateway);
    if (!devices) this.lost.set(gateway, (devices = new Set()));
    let abandoned = 0;
    for (const [app, device] of deliveries) {
      const key = `${app}\u0000${device}`;
      if (devices.has(key)) continue;
      if (devices.size >= this.maxSweepDevices) abandoned++;
      else devices.add(key);
    }
    if (abandoned) this.observer.routeAbandoned(gateway, abandoned);
    if (!this.timer) {
      this.timer = setInterval(() => void this.sweep(), this.sweepIntervalMs);
      this.timer.unref();
    }
  }

  /** One pass: a resync notice per gateway with lost notifications. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const [gateway, devices] of [...this.lost]) {
        const list = [...devices].map((k) => k.split('\u0000') as [string, string]);
        try {
          await publishToGateway(this.redis, this.keys, gateway, { r: list });
        } catch {
          continue; // still lost: the next pass tries again
        }
        // Notifications lost after this pass started were added to the same set: keep those.
        for (const [app, device] of list) devices.delete(`${app}\u0000${device}`);
        if (devices.size === 0) this.lost.delete(gateway);
        this.observer.routeSwept(gateway, list.length);
      }
    } finally {
      this.sweeping = false;
      if (this.lost.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
