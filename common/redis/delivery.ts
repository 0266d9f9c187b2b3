import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';
import { encodeBodyRef, encodeStoredMessage, type StoredMessage } from '../protocol/server-frames.js';
import { STORE_ONCE_RECIPIENTS, writeSharedBody } from './bodies.js';
import { storeMessageForDevices, type StoreLimits, type StoreResult } from './offline-store.js';

/**
 * Delivering one message to many devices, the way every sender does it (the push API, the
 * campaign dispatcher): store it in each device's inbox first (the durable step: a gateway
 * crash after this loses nothing), then route a notification to the gateway holding each
 * online device, over that gateway's pub/sub channel. Offline devices get it from their inbox
 * when they reconnect.
 */

/** One routed delivery: [app, device, seq, sent, stored body]. */
export type RoutedDelivery = [string, string, number, number, string];

/** What a gateway receives on its channel: deliveries, and kicks of sessions that moved. */
export interface ChannelMessage {
  d?: RoutedDelivery[];
  /** [app, device, session]: close that session (the device connected elsewhere). */
  k?: [string, string, string][];
  /** [app, device]: reread these devices' inboxes (their notifications were lost; common/push/router.ts). */
  r?: [string, string][];
}

/**
 * On the wire a channel message names each distinct body once: `b` lists them and a delivery's
 * fifth element is its index there (a fan-out to thousands of one gateway's devices carries its
 * body once, not once per device). A string there is the body itself (older publishers).
 */
interface WireChannelMessage extends Omit<ChannelMessage, 'd'> {
  b?: string[];
  d?: [string, string, number, number, string | number][];
}

export function encodeChannelMessage(msg: ChannelMessage): string {
  if (!msg.d) return JSON.stringify(msg);
  const index = new Map<string, number>();
  const b: string[] = [];
  const d = msg.d.map(([app, device, seq, sent, body]): [string, string, number, number, number] => {
    let i = index.get(body);
    if (i === undefined) index.set(body, (i = b.push(body) - 1));
    return [app, device, seq, sent, i];
  });
  return JSON.stringify({ ...msg, b, d } satisfies WireChannelMessage);
}

export function parseChannelMessage(text: string): ChannelMessage | undefined {
  let m: WireChannelMessage;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    m = parsed as WireChannelMessage;
  } catch {
    return undefined;
  }
  const { b, d, ...rest } = m;
  if (!Array.isArray(d)) return rest;
  const out: RoutedDelivery[] = [];
  for (const x of d) {
    const body = typeof x[4] === 'number' ? b?.[x[4]] : x[4];
    if (typeof body === 'string') out.push([x[0], x[1], x[2], x[3], body]);
  }
  return { ...rest, d: out };
}

export async function publishToGateway(
  redis: PgRedis,
  keys: RedisKeys,
  gateway: string,
  msg: ChannelMessage,
): Promise<void> {
  await redis.publish(keys.gatewayChannel(gateway), encodeChannelMessage(msg));
}

export interface DeliveryCounts {
  recipients: number;
  stored: number;
  /** Already in the inbox under this id (a retried send): not stored again. */
  duplicate: number;
  /** TTL 0 and not connected. */
  dropped: number;
  /** Older messages this one replaced (collapse key), one entry per device: their fate. */
  replacedIds: string[];
  /** Older messages this one pushed out of full inboxes, one entry per device: their fate. */
  evictedIds: string[];
  /** Of those replaced or evicted, the ones their device had read (receipts), one entry per device. */
  readGoneIds: string[];
  /** Notifications routed to gateways (devices online at store time). */
  routed: number;
}

export interface DeliverOptions extends StoreLimits {
  /** TTL 0: store (and deliver) only for devices connected right now. */
  onlyIfOnline?: boolean;
  /**
   * Where routed deliveries go: common/push's PublishRouter (which counts and sweeps lost
   * notifications); a gateway serves its own devices in-process first.
   */
  route: (gateway: string, deliveries: RoutedDelivery[]) => void;
  /** Called for every device's store result (metrics). */
  onResult?: (result: StoreResult) => void;
  /**
   * true: store the body once and put references in the inboxes (bodies.ts), whatever the
   * audience (a campaign page); false: copy it into every inbox; undefined: store it once for
   * STORE_ONCE_RECIPIENTS devices or more.
   */
  storeOnce?: boolean;
}

/**
 * Stores `message` for `devices` (one pipelined stream of scripts, one per hashtag bucket)
 * and routes each part as soon as it is durable. Resolves when every store has completed
 * (routing does not hold the answer up: the inbox is the truth, and the router sweeps what it
 * could not publish).
 */
export async function deliverMessage(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  devices: string[],
  message: StoredMessage,
  opts: DeliverOptions,
): Promise<DeliveryCounts> {
  const counts: DeliveryCounts = {
    recipients: devices.length,
    stored: 0,
    duplicate: 0,
    dropped: 0,
    replacedIds: [],
    evictedIds: [],
    readGoneIds: [],
    routed: 0,
  };
  const body = encodeStoredMessage(message);
  // A large audience's body is written once, before any inbox entry refers to it; the entries
  // are references. Routed deliveries still carry the body (nothing to resolve on the live path).
  let entry = body;
  if (devices.length > 0 && (opts.storeOnce ?? devices.length >= STORE_ONCE_RECIPIENTS)) {
    await writeSharedBody(redis, keys, message, body);
    entry = encodeBodyRef(message);
  }
  await storeMessageForDevices(
    redis,
    keys,
    app,
    devices,
    message,
    opts,
    opts.onlyIfOnline ?? false,
    entry,
    (part, results) => {
      const routes = new Map<string, RoutedDelivery[]>();
      for (const i of part) {
        const r = results[i]!;
        opts.onResult?.(r);
        if (r.outcome === 'offline') {
          counts.dropped++;
          continue;
        }
        if (r.outcome === 'duplicate') counts.duplicate++;
        else counts.stored++;
        if (r.replaced) counts.replacedIds.push(r.replaced);
        counts.evictedIds.push(...r.evictedIds);
        if (r.readGoneIds.length) counts.readGoneIds.push(...r.readGoneIds);
        // Duplicates are routed too: a retried send may be finishing one that died before routing.
        if (r.gateway) {
          let list = routes.get(r.gateway);
          if (!list) routes.set(r.gateway, (list = []));
          list.push([app, devices[i]!, r.seq, message.sent, body]);
          counts.routed++;
        }
      }
      for (const [gateway, deliveries] of routes) opts.route(gateway, deliveries);
    },
  );
  return counts;
}
