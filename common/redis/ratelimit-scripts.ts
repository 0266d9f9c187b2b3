/**
 * Lua scripts of RateLimitPolicy's per-device daily caps and adaptive throttling, registered on
 * every connection beside scripts.ts (connection.ts). Kept apart from the store scripts on
 * purpose: each runs on the keys of one hashtag (keys.ts), a device bucket's `{<app>:<bucket>}`
 * or the published limits' `{rlcfg}`.
 */
export const rateLimitScripts = {
  /**
   * Per-device daily cap for the recipients of one message in one device bucket
   * (common/ratelimit/device-cap.ts). KEYS: the day's counts, held list, held count (see
   * keys.deviceCap). ARGV: cap per day, high-priority cap per day, most messages a device may
   * hold for a later day, PEXPIREAT of the day's counts (ms), release time of what is held now
   * (the next day's start, ms), n, then n triples: device, priority ('h' or 'n'), deferred entry.
   * A device that already holds messages holds this one too (nothing overtakes what waits).
   * Returns one code per recipient: 1 = counted, may go now; 0 = held for the next day;
   * -1 = refused (the device already holds a whole day's allowance; nothing written for it).
   */
  pgDeviceCapAdmit: {
    numberOfKeys: 3,
    lua: `
local cap, hcap, maxHeld = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expAt, relAt, n = ARGV[4], ARGV[5], tonumber(ARGV[6])
local out = {}
for i = 1, n do
  local d, p, e = ARGV[4 + 3 * i], ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  local held = tonumber(redis.call('HGET', KEYS[3], d)) or 0
  local ok = held == 0
  if ok then
    local c = tonumber(redis.call('HGET', KEYS[1], d)) or 0
    if c >= cap then ok = false
    elseif p == 'h' and (tonumber(redis.call('HGET', KEYS[1], d .. '|h')) or 0) >= hcap then ok = false end
  end
  if ok then
    redis.call('HINCRBY', KEYS[1], d, 1)
    if p == 'h' then redis.call('HINCRBY', KEYS[1], d .. '|h', 1) end
    out[i] = 1
  elseif held >= maxHeld then
    out[i] = -1
  else
    redis.call('RPUSH', KEYS[2], relAt .. '|' .. p .. '|' .. e)
    redis.call('HINCRBY', KEYS[3], d, 1)
    out[i] = 0
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIREAT', KEYS[1], expAt) end
return out
`,
  },

  /**
   * Undoes pgDeviceCapAdmit for one message (the rate limit then refused the push: nothing of it
   * may stay). KEYS: as pgDeviceCapAdmit. ARGV: n, then n quadruples: device, priority, code
   * pgDeviceCapAdmit returned, the held list item it wrote (for code 0).
   */
  pgDeviceCapUndo: {
    numberOfKeys: 3,
    lua: `
local n = tonumber(ARGV[1])
for i = 1, n do
  local d, p, code, item = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  if code == '1' then
    redis.call('HINCRBY', KEYS[1], d, -1)
    if p == 'h' then redis.call('HINCRBY', KEYS[1], d .. '|h', -1) end
  elseif code == '0' then
    if redis.call('LREM', KEYS[2], -1, item) > 0 then
      if redis.call('HINCRBY', KEYS[3], d, -1) <= 0 then redis.call('HDEL', KEYS[3], d) end
    end
  end
end
return n
`,
  },

  /**
   * Releases a device bucket's held messages whose day has come, for the process holding the
   * bucket's lease. KEYS: the day's counts (of the day now), held list, held count, releasing,
   * lease. ARGV: lease token, lease ms, now (ms), cap, high-priority cap, PEXPIREAT of the
   * counts, the next day's start (ms), most entries per call. Each due entry is counted against
   * today's cap and moved to `releasing` (the caller admits it to the app's rate limit, then
   * clears the list with pgLimitReleased; a holder that dies leaves it for the next one), or,
   * when today's cap is already reached, held again for the next day. Expired entries are moved
   * to `releasing` uncounted (the caller reports them expired).
   * Returns {code (-1 = another holder, 1 = an unfinished batch, 2 = a new batch), entries
   * ("<exp>|<acceptedAt>|<device>|<body>"), next release time of what stays held (-1 = none)}.
   */
  pgDeviceCapRelease: {
    numberOfKeys: 5,
    lua: `
local token, leaseMs, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, hcap, expAt, nextAt, max = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])
local holder = redis.call('GET', KEYS[5])
if holder and holder ~= token then return {-1, {}, 0} end
redis.call('SET', KEYS[5], token, 'PX', leaseMs)
local pending = redis.call('LRANGE', KEYS[4], 0, -1)
if #pending > 0 then return {1, pending, 0} end
local out, again, k = {}, {}, 0
while k < max do
  local e = redis.call('LINDEX', KEYS[2], 0)
  if not e then break end
  local rel, p, rest = string.match(e, '^(%d+)|(%a)|(.*)$')
  if rel == nil then redis.call('LPOP', KEYS[2]) else
    if tonumber(rel) > now then break end
    redis.call('LPOP', KEYS[2])
    k = k + 1
    local exp, d = string.match(rest, '^(%d+)|%d+|([^|]*)|')
    local left = redis.call('HINCRBY', KEYS[3], d, -1)
    if left <= 0 then redis.call('HDEL', KEYS[3], d) end
    local ok = tonumber(exp) < now
    if not ok and not again[d] then
      local c = tonumber(redis.call('HGET', KEYS[1], d)) or 0
      ok = c < cap and (p ~= 'h' or (tonumber(redis.call('HGET', KEYS[1], d .. '|h')) or 0) < hcap)
      if ok then
        redis.call('HINCRBY', KEYS[1], d, 1)
        if p == 'h' then redis.call('HINCRBY', KEYS[1], d .. '|h', 1) end
      end
    end
    if ok then out[#out + 1] = rest else
      again[d] = true
      redis.call('RPUSH', KEYS[2], nextAt .. '|' .. p .. '|' .. rest)
      redis.call('HINCRBY', KEYS[3], d, 1)
    end
  end
end
if #out > 0 then redis.call('RPUSH', KEYS[4], unpack(out)) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIREAT', KEYS[1], expAt) end
local head = redis.call('LINDEX', KEYS[2], 0)
local nxt = -1
if head then nxt = tonumber(string.match(head, '^(%d+)|')) or -1 end
if #out == 0 and nxt == -1 then redis.call('DEL', KEYS[5]) end
return {2, out, nxt}
`,
  },

  /**
   * One step of an app's adaptive throttling (AIMD, common/ratelimit/adaptive.ts), run by every
   * gateway about once a second per limited app; the state changes at most once a second
   * whoever runs it. KEYS: the app's outcome counters, the adaptive state hash. ARGV: app,
   * this process's outcomes since its last step (n, errors, timeouts), enabled (1/0), window s,
   * error %, timeout %, decrease %, recovery %, recovery interval ms, min rate %, least samples.
   * A breach (more than the ratio's percent of at least `least samples` outcomes over the window)
   * cuts the factor by decrease % (not below min %) and starts a fresh window; with no breach the
   * factor rises by recovery % of the configured rate per interval, up to 1. The factor changes
   * at most once per recovery interval, down or up.
   * Returns {factor (string), reason, changed 1/0, outcomes, errors, timeouts in the window}.
   */
  pgAdaptiveStep: {
    numberOfKeys: 2,
    lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sec = math.floor(now / 1000)
local app = ARGV[1]
local n, e, to = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local enabled, window = ARGV[5] == '1', tonumber(ARGV[6])
local errPct, toPct, dec, rec = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local interval, minF, least = tonumber(ARGV[11]), tonumber(ARGV[12]) / 100, tonumber(ARGV[13])
if n > 0 then redis.call('HINCRBY', KEYS[1], sec .. ':n', n) end
if e > 0 then redis.call('HINCRBY', KEYS[1], sec .. ':e', e) end
if to > 0 then redis.call('HINCRBY', KEYS[1], sec .. ':t', to) end
redis.call('PEXPIRE', KEYS[1], window * 1000 + 60000)
local factor, changedAt, reason, evalAt = 1, 0, 'Healthy', 0
local st = redis.call('HGET', KEYS[2], app)
if st then
  local f, c, r, ev = string.match(st, '^([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  if f then factor, changedAt, reason, evalAt = tonumber(f), tonumber(c), r, tonumber(ev) end
end
if not enabled then
  redis.call('HSET', KEYS[2], app, '1|' .. now .. '|Disabled|' .. now)
  return {'1', 'Disabled', factor < 1 and 1 or 0, 0, 0, 0}
end
if now - evalAt < 1000 then return {tostring(factor), reason, 0, 0, 0, 0} end
local all = redis.call('HGETALL', KEYS[1])
local sn, se, stt = 0, 0, 0
for i = 1, #all, 2 do
  local s, kind = string.match(all[i], '^(%d+):(%a)$')
  local v = tonumber(all[i + 1]) or 0
  if s == nil or tonumber(s) <= sec - window then redis.call('HDEL', KEYS[1], all[i])
  elseif kind == 'n' then sn = sn + v
  elseif kind == 'e' then se = se + v
  else stt = stt + v end
end
local changed = 0
local errBreach = sn >= least and se * 100 > errPct * sn
local toBreach = sn >= least and stt * 100 > toPct * sn
if errBreach or toBreach then
  if now - changedAt >= interval and factor > minF + 1e-9 then
    factor = math.max(minF, factor * (1 - dec / 100))
    changedAt = now
    changed = 1
    redis.call('DEL', KEYS[1])
  end
  if errBreach then reason = 'ErrorRatio' else reason = 'TimeoutRatio' end
elseif factor < 1 then
  -- The cut's reason stays until the first recovery step.
  if now - changedAt >= interval then
    factor = math.min(1, factor + rec / 100)
    if factor > 1 - 1e-9 then factor = 1 end
    changedAt = now
    changed = 1
    if factor < 1 then reason = 'Recovering' else reason = 'Healthy' end
  end
else
  reason = 'Healthy'
end
redis.call('HSET', KEYS[2], app, tostring(factor) .. '|' .. changedAt .. '|' .. reason .. '|' .. now)
return {tostring(factor), reason, changed, sn, se, stt}
`,
  },
} as const;

/** The script commands of rateLimitScripts (see there for their contracts). */
export interface RateLimitScriptCommands {
  pgDeviceCapAdmit(
    count: string,
    held: string,
    heldCount: string,
    cap: number,
    highCap: number,
    maxHeld: number,
    countExpireAt: number,
    releaseAt: number,
    n: number,
    ...triples: string[]
  ): Promise<number[]>;
  pgDeviceCapUndo(
    count: string,
    held: string,
    heldCount: string,
    n: number,
    ...quads: string[]
  ): Promise<number>;
  pgDeviceCapRelease(
    count: string,
    held: string,
    heldCount: string,
    releasing: string,
    lease: string,
    token: string,
    leaseMs: number,
    now: number,
    cap: number,
    highCap: number,
    countExpireAt: number,
    nextDayAt: number,
    max: number,
  ): Promise<[number, string[], number]>;
  pgAdaptiveStep(
    outcomes: string,
    state: string,
    app: string,
    n: number,
    errors: number,
    timeouts: number,
    enabled: '1' | '0',
    windowSeconds: number,
    errorRatioPercent: number,
    timeoutRatioPercent: number,
    decreasePercent: number,
    recoveryPercent: number,
    recoveryIntervalMs: number,
    minRatePercent: number,
    leastSamples: number,
  ): Promise<[string, string, number, number, number, number]>;
}
