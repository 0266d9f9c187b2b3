/**
 * The whole Redis key schema of pushgate, in one place. Every program builds keys through
 * `redisKeys(prefix)`; nothing else spells a key.
 *
 * Redis Cluster: keys that one Lua script or one multi-key command touches share a `{hashtag}`:
 *   - a bucket of devices      {<app>:<bucket>}   bucket = deviceBucket(device), 0..1023: one device's
 *                                                 keys (store, ack, replay, presence) are in one slot,
 *                                                 and a fan-out stores and acks for all recipients of a
 *                                                 bucket in one script call. 1024 buckets spread an app
 *                                                 over up to 1024 slots; the number is part of the schema
 *   - a bucket's tag index     {<app>:<bucket>}   (under `i:`) the devices of the bucket per tag and
 *                                                 the bucket's registered devices: an app's audience
 *                                                 spreads over the bucket slots (no one-slot tag set);
 *                                                 a tag expression is resolved per bucket in one script
 *                                                 (common/push/target.ts), and a device's index entries
 *                                                 are in the slot of its other keys
 *   - one app's indexes        {<app>}            small, app-wide: the tag catalogue (tag -> devices,
 *                                                 the --max-tags-per-app bound), alias sets. The
 *                                                 legacy one-slot tag sets and device set (`legacy*`)
 *                                                 are read beside the buckets until
 *                                                 migrateTagIndex (common/redis/app-index.ts) empties them
 *   - one message's status     {m:<id>}
 *   - one message's body       {b:<id>}           stored once for a large audience (bodies.ts)
 *   - the gateway registry     {gwreg}            (small: one hash per gateway pod)
 *   - one rate-limit bucket    {rl:<name>}
 *   - one shard of an app's    {rl:<app>:<shard>} shard = appLimitShard(device, shards), 0..15: the
 *     rate limit                                 shard's GCRA state, its deferred queue, the batch being
 *                                                released and the releaser's lease, so admitting and
 *                                                releasing are one script each; an app's budget is
 *                                                split over up to 16 slots (no hot key)
 *   - the published limits     {rlcfg}            one small hash (app -> effective limit), read by
 *                                                every gateway once a second, written by the operator;
 *                                                beside it the adaptive throttling state (app -> factor)
 *                                                and each app's outcome counters (common/ratelimit/adaptive.ts)
 *   - a device bucket's daily  {<app>:<bucket>}   (the device bucket's slot, under `dc:`): the day's
 *     caps                                       per-device counts, the messages held for the next day
 *                                                and their per-device count (common/ratelimit/device-cap.ts)
 *   - the campaign index       {cmp}              the set of published campaign ids
 *   - one campaign             {cmp:<id>}         its plan (written by the operator) and progress
 *                                                counters (dispatchers and gateways); see
 *                                                common/campaign/plan.ts; the dispatchers' work
 *                                                units (cursors, leases) beside the progress, so
 *                                                advancing a cursor and counting are one script
 *   - one unit of an audience  {cmp:<id>:<unit>}  the snapshot of a campaign's audience, one list per
 *                                                work unit (a range of device buckets), spread over
 *                                                slots (workloads/dispatcher)
 * App ids, device ids, tags and aliases are validated (common/protocol idString) and can never
 * contain braces, so they cannot break a hashtag.
 */
export interface RedisKeys {
  prefix: string;
  /**
   * HASH: seq (last sequence), gw + sess (presence), tags (JSON array), alias, hb (learned
   * interval ms), seen, rseq (receipt mark: inbox entries up to it are counted delivered), ix
   * (index mark: the registration the tag indexes hold for it, app-index.ts registrationMark).
   */
  deviceMeta(app: string, device: string): string;
  /** ZSET: message id -> seq; the device's undelivered/unacked messages in order. */
  deviceInbox(app: string, device: string): string;
  /** HASH: message id -> stored message JSON (see StoredMessage). */
  deviceMessages(app: string, device: string): string;
  /** HASH: collapse key -> message id of the newest message with that key. */
  deviceCollapse(app: string, device: string): string;
  /** ZSET: the registered devices of one device bucket of an app -> last seen (ms). Push to all reads it. */
  bucketDevices(app: string, bucket: number): string;
  /** ZSET: the devices of one device bucket carrying a tag -> last seen (ms). Tag targets read it. */
  tagDevices(app: string, bucket: number, tag: string): string;
  /** ZSET (legacy, one slot per app): every registered device; read until migrated, then empty. */
  legacyAppDevices(app: string): string;
  /** ZSET (legacy, one slot per app): devices carrying a tag; read until migrated, then empty. */
  legacyTagDevices(app: string, tag: string): string;
  /** ZSET: tag -> number of devices carrying it (for listing tags). */
  appTags(app: string): string;
  /** SET: devices that set an alias. */
  aliasDevices(app: string, alias: string): string;
  /** STRING: idempotency key -> message id (24 h). */
  idempotency(app: string, key: string): string;
  /** HASH: message status: app, target, state, recipients, stored, sent, acked, ... */
  messageStatus(id: string): string;
  /**
   * STRING: a message body stored once for many inboxes (their entries refer to it, see
   * common/redis/bodies.ts); in its own slot, so it is read apart from any inbox script.
   */
  messageBody(id: string): string;
  /** ZSET: gateway id -> last registration (ms). */
  gatewayIndex(): string;
  /** HASH: one gateway's registration (see GatewayRecord), with a short TTL. */
  gateway(id: string): string;
  /**
   * STRING: the value a gateway wrote at its last Redis health check. Found missing or older
   * at the next one, Redis lost or rewound state (restart without persistence, failover to a
   * lagging replica, FLUSHALL), and the gateway writes back what it holds.
   */
  gatewayWitness(id: string): string;
  /** LIST: recent probe results of a gateway ("1:<ms>" / "0:<ms>"), newest first. */
  gatewayProbes(id: string): string;
  /** Pub/sub channel a gateway listens on for deliveries and kicks. */
  gatewayChannel(id: string): string;
  /** STRING: GCRA theoretical arrival time of a rate-limit bucket. */
  rateLimit(name: string): string;
  /**
   * The keys of one shard of an app's rate limit (common/ratelimit/app-limit.ts), in the order
   * the scripts take them: GCRA state (STRING), deferred queue (LIST of entries, oldest first),
   * the batch being released (LIST), the releaser's lease (STRING).
   */
  appLimitShard(app: string, shard: number): [tat: string, queue: string, releasing: string, lease: string];
  /** HASH: app id -> effective limit JSON (AppLimitConfig), published by the operator. */
  appLimitConfig(): string;
  /**
   * The per-device daily cap of one device bucket (common/ratelimit/device-cap.ts), in the
   * device bucket's slot, in the order the scripts take them: the day's counts (HASH device ->
   * messages, device|h -> high-priority messages; expires after the day), the messages held for
   * a later day (LIST, acceptance order), held messages per device (HASH), the batch being
   * released (LIST), the releaser's lease (STRING).
   */
  deviceCap(
    app: string,
    bucket: number,
    day: number,
  ): [count: string, held: string, heldCount: string, releasing: string, lease: string];
  /** ZSET: device buckets of an app holding messages for a later day -> when to look next (ms). */
  deviceCapIndex(app: string): string;
  /** HASH: app -> adaptive throttling state ("factor|changedAt|reason|evaluatedAt"), next to appLimitConfig. */
  appLimitAdaptive(): string;
  /** HASH: an app's downstream outcomes per second ("<sec>:n|e|t" -> count), for adaptive throttling. */
  appLimitOutcomes(app: string): string;
  /** SET: ids of the published campaigns (common/campaign/plan.ts). */
  campaignIndex(): string;
  /** STRING: a campaign's plan JSON (CampaignPlan), published by the TagCampaign controller. */
  campaignPlan(id: string): string;
  /** HASH: a campaign's progress: the counters, snapshotAt, startedAt, finishedAt, ratePerSecond, throttled. */
  campaignProgress(id: string): string;
  /**
   * HASH: the dispatchers' work units of a campaign (workloads/dispatcher/units.ts): units,
   * len:<u>, cursor:<u>, lease:<u> (owner|epoch|expires), done:<u>, epoch, closed. Same slot as
   * the progress.
   */
  campaignUnits(id: string): string;
  /** LIST: the audience snapshot of one work unit of a campaign (device ids, cursor = index). */
  campaignAudience(id: string, unit: number): string;
  /** STRING: the lock of the replica taking a campaign's audience snapshot. */
  campaignSnapshotLock(id: string): string;
  /** HASH: unix second -> messages a campaign sent in it (the measured rate). */
  campaignRate(id: string): string;
  /** SET: ids of campaigns the dispatchers made keys for (their garbage collection reads it). */
  campaignDispatched(): string;
}

export const DEFAULT_KEY_PREFIX = 'pg';
/** What a key prefix may be (the programs' --key-prefix and a PushGateway's spec.redis.keyPrefix). */
export const KEY_PREFIX_PATTERN = '^[A-Za-z0-9:_-]+$';
export const KEY_PREFIX_MAX = 64;

/** Device buckets per app (part of the key schema: changing it moves every device's keys). */
export const DEVICE_BUCKETS = 1024;

/** FNV-1a of the device id, modulo DEVICE_BUCKETS. */
export function deviceBucket(device: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < device.length; i++) {
    h ^= device.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % DEVICE_BUCKETS;
}

export function redisKeys(prefix: string = DEFAULT_KEY_PREFIX): RedisKeys {
  const d = (app: string, device: string) => `${prefix}:d:{${app}:${deviceBucket(device)}}:${device}`;
  const a = (app: string) => `${prefix}:a:{${app}}`;
  const reg = `${prefix}:g:{gwreg}`;
  return {
    prefix,
    deviceMeta: (app, device) => `${d(app, device)}:meta`,
    deviceInbox: (app, device) => `${d(app, device)}:inbox`,
    deviceMessages: (app, device) => `${d(app, device)}:msgs`,
    deviceCollapse: (app, device) => `${d(app, device)}:collapse`,
    bucketDevices: (app, bucket) => `${prefix}:i:{${app}:${bucket}}:devices`,
    tagDevices: (app, bucket, tag) => `${prefix}:i:{${app}:${bucket}}:tag:${tag}`,
    legacyAppDevices: (app) => `${a(app)}:devices`,
    legacyTagDevices: (app, tag) => `${a(app)}:tag:${tag}`,
    appTags: (app) => `${a(app)}:tags`,
    aliasDevices: (app, alias) => `${a(app)}:alias:${alias}`,
    idempotency: (app, key) => `${a(app)}:idem:${key}`,
    messageStatus: (id) => `${prefix}:m:{m:${id}}`,
    messageBody: (id) => `${prefix}:b:{b:${id}}`,
    gatewayIndex: () => `${reg}:index`,
    gateway: (id) => `${reg}:gw:${id}`,
    gatewayProbes: (id) => `${reg}:probe:${id}`,
    gatewayWitness: (id) => `${reg}:witness:${id}`,
    gatewayChannel: (id) => `${prefix}:chan:gw:${id}`,
    rateLimit: (name) => `${prefix}:rl:{rl:${name}}`,
    appLimitShard: (app, shard) => {
      const k = `${prefix}:rl:{rl:${app}:${shard}}`;
      return [`${k}:tat`, `${k}:q`, `${k}:rel`, `${k}:lease`];
    },
    appLimitConfig: () => `${prefix}:rlcfg:{rlcfg}`,
    deviceCap: (app, bucket, day) => {
      const k = `${prefix}:dc:{${app}:${bucket}}`;
      return [`${k}:n:${day}`, `${k}:held`, `${k}:heldn`, `${k}:rel`, `${k}:lease`];
    },
    deviceCapIndex: (app) => `${a(app)}:capidx`,
    appLimitAdaptive: () => `${prefix}:rlcfg:{rlcfg}:adaptive`,
    appLimitOutcomes: (app) => `${prefix}:rlcfg:{rlcfg}:outcomes:${app}`,
    campaignIndex: () => `${prefix}:cmp:{cmp}:index`,
    campaignPlan: (id) => `${prefix}:cmp:{cmp:${id}}:plan`,
    campaignProgress: (id) => `${prefix}:cmp:{cmp:${id}}:progress`,
    campaignUnits: (id) => `${prefix}:cmp:{cmp:${id}}:units`,
    campaignAudience: (id, unit) => `${prefix}:cmp:{cmp:${id}:${unit}}:aud`,
    campaignSnapshotLock: (id) => `${prefix}:cmp:{cmp:${id}}:snaplock`,
    campaignRate: (id) => `${prefix}:cmp:{cmp:${id}}:rate`,
    campaignDispatched: () => `${prefix}:cmp:{cmp}:dispatched`,
  };
}

/**
 * The four keys of one device's offline store, in the order pgClaim takes them (pgStore and
 * pgAck take the meta key alone and derive the other three the same way, by suffix).
 */
export function deviceStoreKeys(
  keys: RedisKeys,
  app: string,
  device: string,
): [string, string, string, string] {
  // The device's key stem, hashed once.
  const meta = keys.deviceMeta(app, device);
  const stem = meta.slice(0, -':meta'.length);
  return [meta, `${stem}:inbox`, `${stem}:msgs`, `${stem}:collapse`];
}
