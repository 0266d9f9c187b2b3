import {
  forgetDevice,
  indexDevice,
  touchDevice,
  type DeviceRegistration,
} from '../../common/redis/app-index.js';
import type { PgRedis } from '../../common/redis/connection.js';
import type { RedisKeys } from '../../common/redis/keys.js';
import { countMessage, type MessageCounter } from '../../common/redis/messages.js';
import {
  ackMessagesForDevices,
  claimPresence,
  readInbox,
  releasePresence,
  type AckEntry,
  type AckResult,
  type ClaimResult,
  type Presence,
  type ReplayPage,
} from '../../common/redis/offline-store.js';

export type { AckEntry, AckResult, ClaimResult, DeviceRegistration, MessageCounter, Presence, ReplayPage };

/** Messages per inbox read (hello's first page and every resync page). */
export const REPLAY_PAGE = 100;

/** Reading a device's inbox in seq order: all the delivery orderer needs. */
export interface InboxReader {
  /** Stored messages with seq > afterSeq, oldest first (expired ones are dropped and counted). */
  readInbox(app: string, device: string, afterSeq: number, limit: number): Promise<ReplayPage>;
}

/** Removing acknowledged messages and counting receipts: all the ack batcher needs. */
export interface AckApplier {
  /** Acks and receipts of many devices of one app, results in input order. */
  ack(app: string, acks: AckEntry[]): Promise<AckResult[]>;
}

/**
 * What the hub keeps outside the process, in the broker's place in Centrifuge's shape: inboxes,
 * presence, the device's tag/alias registration and message status counters. Redis in
 * production (redisDeviceStore); MemoryDeviceStore (memory-store.ts) for one process.
 */
export interface DeviceStore extends InboxReader, AckApplier {
  /**
   * Records that `presence` now holds the device, stores the tags/alias it announced
   * (undefined: keep the stored ones), and reads the first inbox page at the same instant.
   */
  claim(
    app: string,
    device: string,
    presence: Presence,
    announced: { tags?: string[]; alias?: string | null },
  ): Promise<ClaimResult>;
  /** Clears presence if `session` still holds it; remembers the learned heartbeat. */
  release(app: string, device: string, session: string, learnedHeartbeatMs?: number): Promise<void>;
  /**
   * Writes the device into its app's indexes. `metaWritten`: claim already stored the tags
   * and alias on the device (hello), only the indexes change.
   */
  register(
    app: string,
    device: string,
    now: DeviceRegistration,
    /** What the meta said before, and the index mark the claim read (ClaimResult.indexed). */
    before: Partial<DeviceRegistration> & { indexed?: string },
    metaWritten: boolean,
  ): Promise<void>;
  /** Touches last-seen in the indexes (on disconnect). */
  touch(app: string, device: string, tags: string[]): Promise<void>;
  /** Removes the device from its app's indexes (bye). */
  forget(app: string, device: string, reg: DeviceRegistration): Promise<void>;
  countStatus(id: string, counter: MessageCounter, n: number): Promise<void>;
}

/** `maxTagsPerApp`: distinct tags an app may have (register throws TagLimitError beyond). */
export function redisDeviceStore(
  redis: PgRedis,
  keys: RedisKeys,
  keyTtlMs: number,
  maxTagsPerApp = 0,
): DeviceStore {
  return {
    claim: (app, device, presence, announced) =>
      claimPresence(redis, keys, app, device, presence, keyTtlMs, announced, REPLAY_PAGE),
    release: async (app, device, session, learnedHeartbeatMs) => {
      await releasePresence(redis, keys, app, device, session, learnedHeartbeatMs);
    },
    readInbox: (app, device, afterSeq, limit) => readInbox(redis, keys, app, device, afterSeq, limit),
    ack: (app, acks) => ackMessagesForDevices(redis, keys, app, acks),
    register: (app, device, now, before, metaWritten) =>
      indexDevice(redis, keys, app, device, now, before, Date.now(), !metaWritten, maxTagsPerApp),
    touch: (app, device, tags) => touchDevice(redis, keys, app, device, tags),
    forget: (app, device, reg) => forgetDevice(redis, keys, app, device, reg),
    countStatus: async (id, counter, n) => {
      await countMessage(redis, keys, id, counter, n);
    },
  };
}
