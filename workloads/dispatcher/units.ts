import type { PgRedis } from '../../common/redis/connection.js';
import type { RedisKeys } from '../../common/redis/keys.js';
import { DEVICE_BUCKETS } from '../../common/redis/keys.js';

/**
 * A campaign's work, split for the dispatcher replicas: UNITS work units, each a range of
 * device buckets (DEVICE_BUCKETS / UNITS buckets), each with its own audience list (the
 * snapshot), a durable cursor (an index into the list) and a lease. Everything but the lists is
 * in keys.campaignUnits(id), in the same slot as keys.campaignProgress(id), so that advancing a
 * cursor and counting what was sent are one script: they cannot disagree.
 *
 * Fencing: a claim gives the unit a new epoch. Only the holder of the current, unexpired lease
 * may advance the cursor and count. A replica frozen mid-batch (SIGSTOP) whose lease expired
 * and was taken wakes to find its advance refused: what it stored is idempotent by message id
 * (the new holder stores the same page again as duplicates and counts it once), nothing is
 * counted twice. Times are Redis's (TIME), so replicas' clocks do not matter for leases.
 */
export const UNITS = 64;
export const BUCKETS_PER_UNIT = DEVICE_BUCKETS / UNITS;

export function unitOfBucket(bucket: number): number {
  return Math.floor(bucket / BUCKETS_PER_UNIT);
}

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** Parses owner|epoch|expires. */
const LEASE = `local function lease_of(v)
  if not v then return nil end
  local owner, epoch, exp = string.match(v, '^(.*)|(%d+)|(%d+)$')
  return owner, tonumber(epoch), tonumber(exp)
end`;

/**
 * KEYS: units, progress. ARGV: owner, leaseMs, first unit to look at.
 * Returns {unit, epoch, cursor, len} for a claimed unit, or {code}:
 *   -1 every unit done   -2 closed (finished/cancelled)   -3 no snapshot yet
 *   -4 every open unit is leased   -5 state lost (progress says snapshot, units are gone)
 */
const CLAIM = `${NOW}
${LEASE}
if redis.call('HGET', KEYS[1], 'closed') then return {-2} end
local units = tonumber(redis.call('HGET', KEYS[1], 'units'))
if not redis.call('HGET', KEYS[2], 'snapshotAt') then return {-3} end
if not units then return {-5} end
local start, open = tonumber(ARGV[3]), 0
for k = 0, units - 1 do
  local u = (start + k) % units
  if not redis.call('HGET', KEYS[1], 'done:' .. u) then
    open = open + 1
    local _, _, exp = lease_of(redis.call('HGET', KEYS[1], 'lease:' .. u))
    if not exp or exp < now then
      local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
      redis.call('HSET', KEYS[1], 'lease:' .. u, ARGV[1] .. '|' .. epoch .. '|' .. (now + tonumber(ARGV[2])))
      return {u, epoch, tonumber(redis.call('HGET', KEYS[1], 'cursor:' .. u) or '0'),
        tonumber(redis.call('HGET', KEYS[1], 'len:' .. u) or '0')}
    end
  end
end
if open == 0 then return {-1} end
return {-4}`;

/**
 * KEYS: units, progress, rate. ARGV: unit, epoch, from, to, sent, deferred, expired, failed,
 * done (0/1), leaseMs, owner, the unix second the page's cells were granted (the rate's
 * per-second count; '' = now). Moves the cursor from `from` to `to` and counts, only while the
 * caller holds the unit's current lease and the cursor is where it says, and the progress
 * exists (a deleted campaign's is not created again); renews the lease (or drops it when done).
 * Returns 1, or 0 when fenced (nothing written).
 */
const ADVANCE = `${NOW}
${LEASE}
local u = ARGV[1]
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local _, epoch, exp = lease_of(redis.call('HGET', KEYS[1], 'lease:' .. u))
if not epoch or epoch ~= tonumber(ARGV[2]) or exp < now then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'cursor:' .. u) or '0') ~= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'cursor:' .. u, ARGV[4])
local sent = tonumber(ARGV[5])
if sent > 0 then
  redis.call('HINCRBY', KEYS[2], 'sent', sent)
  redis.call('HSETNX', KEYS[2], 'startedAt', now)
  local sec = ARGV[12]
  if sec == '' then sec = tostring(t[1]) end
  redis.call('HINCRBY', KEYS[3], sec, sent)
end
if tonumber(ARGV[6]) > 0 then redis.call('HINCRBY', KEYS[2], 'deferred', ARGV[6]) end
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[2], 'expired', ARGV[7]) end
if tonumber(ARGV[8]) > 0 then redis.call('HINCRBY', KEYS[2], 'failed', ARGV[8]) end
if ARGV[9] == '1' then
  redis.call('HSET', KEYS[1], 'done:' .. u, '1')
  redis.call('HDEL', KEYS[1], 'lease:' .. u)
else
  redis.call('HSET', KEYS[1], 'lease:' .. u, ARGV[11] .. '|' .. epoch .. '|' .. (now + tonumber(ARGV[10])))
end
return 1`;

/** KEYS: units. ARGV: unit, epoch. Gives a lease back (suspend, quiet hours, shutdown); the cursor stays. */
const RELEASE = `${LEASE}
local _, epoch = lease_of(redis.call('HGET', KEYS[1], 'lease:' .. ARGV[1]))
if epoch and epoch == tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], 'lease:' .. ARGV[1]) return 1 end
return 0`;

/**
 * KEYS: units, progress. ARGV: mode ('done' | 'stop': cancel, dry run). Marks the campaign finished once no
 * unit has a live lease (so no batch can still be counted) and, for 'done', every unit is done.
 * Closes the units: nothing can be claimed afterwards. Returns 1 when finished (now or before).
 */
const FINISH = `${NOW}
${LEASE}
if redis.call('HGET', KEYS[2], 'finishedAt') then return 1 end
local units = tonumber(redis.call('HGET', KEYS[1], 'units') or '0')
for u = 0, units - 1 do
  local _, _, exp = lease_of(redis.call('HGET', KEYS[1], 'lease:' .. u))
  if exp and exp >= now then return 0 end
  if ARGV[1] == 'done' and not redis.call('HGET', KEYS[1], 'done:' .. u) then return 0 end
end
redis.call('HSET', KEYS[1], 'closed', '1')
redis.call('HSET', KEYS[2], 'finishedAt', now)
return 1`;

/**
 * KEYS: units, progress. ARGV: targeted, snapshotAt, units, then len of each unit. Records a
 * finished snapshot atomically (targeted, snapshotAt and every unit's length), once.
 */
const SNAPSHOT = `if redis.call('HGET', KEYS[2], 'snapshotAt') then return 0 end
local units = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'units', units)
for u = 0, units - 1 do redis.call('HSET', KEYS[1], 'len:' .. u, ARGV[4 + u]) end
redis.call('HSET', KEYS[2], 'targeted', ARGV[1], 'snapshotAt', ARGV[2])
return 1`;

export type Claim =
  | { unit: number; epoch: number; cursor: number; len: number }
  | { code: 'done' | 'closed' | 'no-snapshot' | 'busy' | 'state-lost' };

const CLAIM_CODES = {
  '-1': 'done',
  '-2': 'closed',
  '-3': 'no-snapshot',
  '-4': 'busy',
  '-5': 'state-lost',
} as const;

export interface BatchCounts {
  sent: number;
  deferred: number;
  expired: number;
  failed: number;
}

/** The work units of one campaign, as one replica sees them. */
export class CampaignUnits {
  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    readonly id: string,
    readonly owner: string,
    readonly leaseMs: number,
  ) {}

  private get unitsKey() {
    return this.keys.campaignUnits(this.id);
  }
  private get progressKey() {
    return this.keys.campaignProgress(this.id);
  }

  async claim(startUnit = Math.floor(Math.random() * UNITS)): Promise<Claim> {
    const r = (await this.redis.eval(
      CLAIM,
      2,
      this.unitsKey,
      this.progressKey,
      this.owner,
      String(this.leaseMs),
      String(startUnit),
    )) as number[];
    if (r.length === 1) return { code: CLAIM_CODES[String(r[0]) as keyof typeof CLAIM_CODES] };
    return { unit: r[0]!, epoch: r[1]!, cursor: r[2]!, len: r[3]! };
  }

  async advance(
    unit: number,
    epoch: number,
    from: number,
    to: number,
    counts: BatchCounts,
    done: boolean,
    grantedAtMs?: number,
  ): Promise<boolean> {
    const r = await this.redis.eval(
      ADVANCE,
      3,
      this.unitsKey,
      this.progressKey,
      this.keys.campaignRate(this.id),
      String(unit),
      String(epoch),
      String(from),
      String(to),
      String(counts.sent),
      String(counts.deferred),
      String(counts.expired),
      String(counts.failed),
      done ? '1' : '0',
      String(this.leaseMs),
      this.owner,
      grantedAtMs === undefined ? '' : String(Math.floor(grantedAtMs / 1000)),
    );
    return r === 1;
  }

  async release(unit: number, epoch: number): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.unitsKey, String(unit), String(epoch));
  }

  async finish(mode: 'done' | 'stop'): Promise<boolean> {
    return (await this.redis.eval(FINISH, 2, this.unitsKey, this.progressKey, mode)) === 1;
  }

  /** Records a finished snapshot; false when another replica recorded one first. */
  async recordSnapshot(targeted: number, snapshotAt: number, lens: number[]): Promise<boolean> {
    const r = await this.redis.eval(
      SNAPSHOT,
      2,
      this.unitsKey,
      this.progressKey,
      String(targeted),
      String(snapshotAt),
      String(lens.length),
      ...lens.map(String),
    );
    return r === 1;
  }

  /** Sets progress fields (rate, throttled) while the progress exists (not after a delete). */
  async setProgress(fields: Record<string, string>): Promise<void> {
    await this.redis.eval(
      "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(ARGV)) end return 0",
      1,
      this.progressKey,
      ...Object.entries(fields).flat(),
    );
  }

  /** Whether any replica ever claimed a unit (the units' epoch exists). */
  async everClaimed(): Promise<boolean> {
    return (await this.redis.hexists(this.unitsKey, 'epoch')) === 1;
  }
}
