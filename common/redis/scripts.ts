/**
 * Lua scripts, registered on every connection with ioredis `defineCommand` (EVALSHA with a
 * fallback to EVAL). Each script touches only keys of one hashtag (see keys.ts), so it runs
 * unchanged on Redis Cluster.
 */

/**
 * The hot scripts (pgStore, pgAck: one entry per recipient of every push) declare one key per
 * device, its meta hash, and derive the device's inbox, msgs and collapse keys from it by suffix
 * (keys.ts: the four share one stem, so one hashtag and one Cluster slot; the gateway-cluster
 * test runs them on a real Cluster). Three keys fewer per recipient to build, encode and parse,
 * on both sides of every store and ack call.
 */
const deviceKeysLua = `
local function deviceKeys(meta)
  local stem = string.sub(meta, 1, -6)
  return meta, stem .. ':inbox', stem .. ':msgs', stem .. ':collapse'
end
`;

/** Removes one message from a device store, and its collapse mapping if it still points at it. */
const dropMessageLua = `
local function drop(inbox, msgs, collapse, id, body)
  redis.call('ZREM', inbox, id)
  redis.call('HDEL', msgs, id)
  if body and string.find(body, '"collapse":', 1, true) then
    local ok, m = pcall(cjson.decode, body)
    if ok and type(m) == 'table' and type(m.collapse) == 'string' and redis.call('HGET', collapse, m.collapse) == id then
      redis.call('HDEL', collapse, m.collapse)
    end
  end
end
`;

/**
 * Reads stored messages after a seq, dropping expired ones (see pgReplay). A reference entry
 * (server-frames encodeBodyRef) is returned with its id in front, for the reader to resolve.
 */
const replayLua = `
local function replay(inbox, msgs, collapse, now, after, limit)
  local ids = redis.call('ZRANGEBYSCORE', inbox, '(' .. after, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
  local out, expired = {}, 0
  for i = 1, #ids, 2 do
    local id, seq = ids[i], ids[i + 1]
    local body = redis.call('HGET', msgs, id)
    if not body then
      redis.call('ZREM', inbox, id)
    else
      local exp = tonumber(string.match(body, '"exp":(%d+)'))
      if exp and exp < now then
        drop(inbox, msgs, collapse, id, body)
        expired = expired + 1
      else
        out[#out + 1] = seq
        -- A reference to a body stored once is kept without its id (the field is the id): put it in front.
        if string.sub(body, 1, 7) == '{"ref":' then body = '{"id":"' .. id .. '",' .. string.sub(body, 2) end
        out[#out + 1] = body
      end
    end
  end
  return {expired, out}
end
`;

export const scripts = {
  /**
   * Store messages in the inboxes of n devices (all in one hashtag bucket, see keys.ts): each
   * device gets its own list of the call's messages, stored in that order (so several pushes
   * accepted together cost one call per bucket, not one per push).
   * KEYS: the meta key of each device (numkeys = n; the other three derived, see deviceKeysLua).
   * ARGV: max messages per device, key TTL ms, M (messages in the call); then M times: id, body
   * JSON, collapse key ('' = none), only-if-online (1 = store only when a gateway holds the
   * device); then per device: k, followed by k message numbers (1..M).
   * Returns, per device in argument order: gw (the gateway holding it, '' = none), then per
   * message entry three integers: code, seq, inbox size after it. Code 1: stored; 0: already
   * there; 2: offline and only-if-online; 3: stored, and older entries left the inbox, which
   * three more values follow: the replaced id ('' = none), the evicted ids (comma-separated; so
   * their status can record it), and of the replaced and evicted ids those the device's receipts
   * had counted delivered (seq <= its meta rseq, see pgAck; comma-separated). The common entry
   * is three integers: the reply is parsed once per recipient of every push.
   * Idempotent by id: storing an id that is already in an inbox changes nothing there.
   */
  pgStore: {
    lua: `${deviceKeysLua}${dropMessageLua}
local max, ttl, nmsg = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local at = 4 + 4 * nmsg
local out, o = {}, 0
for d = 1, #KEYS do
  local meta, inbox, msgs, collapse = deviceKeys(KEYS[d])
  local gw = redis.call('HGET', meta, 'gw') or ''
  out[o + 1] = gw
  o = o + 1
  local stored, collapsed = false, false
  local rseq
  local function read(seq)
    if not seq then return false end
    if not rseq then rseq = tonumber(redis.call('HGET', meta, 'rseq')) or 0 end
    return tonumber(seq) <= rseq
  end
  local k = tonumber(ARGV[at])
  at = at + 1
  for _ = 1, k do
    local b = 4 * tonumber(ARGV[at])
    at = at + 1
    local id, body, ckey, onlyOnline = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3] == '1'
    if redis.call('HEXISTS', msgs, id) == 1 then
      out[o + 1], out[o + 2], out[o + 3] = 0, tonumber(redis.call('ZSCORE', inbox, id)) or 0, redis.call('ZCARD', inbox)
      o = o + 3
    elseif onlyOnline and gw == '' then
      out[o + 1], out[o + 2], out[o + 3] = 2, 0, redis.call('ZCARD', inbox)
      o = o + 3
    else
      local seq = redis.call('HINCRBY', meta, 'seq', 1)
      local replaced = ''
      local gone = {}
      if ckey ~= '' then
        local old = redis.call('HGET', collapse, ckey)
        if old then
          if read(redis.call('ZSCORE', inbox, old)) then gone[#gone + 1] = old end
          redis.call('ZREM', inbox, old)
          redis.call('HDEL', msgs, old)
          replaced = old
        end
        redis.call('HSET', collapse, ckey, id)
        collapsed = true
      end
      redis.call('ZADD', inbox, seq, id)
      redis.call('HSET', msgs, id, body)
      local evicted = {}
      local n = redis.call('ZCARD', inbox)
      while n > max do
        local popped = redis.call('ZPOPMIN', inbox)
        local oid = popped[1]
        drop(inbox, msgs, collapse, oid, redis.call('HGET', msgs, oid))
        evicted[#evicted + 1] = oid
        if read(popped[2]) then gone[#gone + 1] = oid end
        n = n - 1
      end
      stored = true
      if replaced == '' and #evicted == 0 then
        out[o + 1], out[o + 2], out[o + 3] = 1, seq, n
        o = o + 3
      else
        out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5], out[o + 6] =
          3, seq, n, replaced, table.concat(evicted, ','), table.concat(gone, ',')
        o = o + 6
      end
    end
  end
  if stored then
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', inbox, ttl)
    redis.call('PEXPIRE', msgs, ttl)
    if collapsed then redis.call('PEXPIRE', collapse, ttl) end
  end
end
return out
`,
  },

  /**
   * Acknowledge messages and apply receipts of n device entries (one hashtag bucket; a device
   * may have several entries). KEYS: the meta key of each entry (numkeys = n; see deviceKeysLua).
   * ARGV: per entry its id count and its receipt seq (0 = none), then all ids in entry order.
   * The device's receipt mark is `rseq` in its meta hash: every inbox entry with seq <= rseq
   * has been counted delivered. A receipt r > rseq counts the entries with seq in (rseq, r]
   * (those still in the inbox; the caller never passes an r beyond what its connection was
   * sent) and moves the mark to r; an acked entry above the mark is counted delivered by its ack.
   * Returns per entry: m, then the m ids the receipt counted delivered, then one flag per id:
   * 0 (unknown), 1 (removed; already counted delivered), 2 (removed and counted delivered now).
   */
  pgAck: {
    lua: `${deviceKeysLua}${dropMessageLua}
local n = #KEYS
local res, at = {}, 2 * n + 1
for d = 0, n - 1 do
  local meta, inbox, msgs, collapse = deviceKeys(KEYS[d + 1])
  local rseq = tonumber(redis.call('HGET', meta, 'rseq')) or 0
  local upto = tonumber(ARGV[2 * d + 2])
  if upto > rseq then
    local read = redis.call('ZRANGEBYSCORE', inbox, '(' .. rseq, upto)
    res[#res + 1] = #read
    for i = 1, #read do res[#res + 1] = read[i] end
    -- A meta hash that is gone (expired with the inbox) is not created again without its TTL.
    if redis.call('EXISTS', meta) == 1 then redis.call('HSET', meta, 'rseq', upto) end
    rseq = upto
  else
    res[#res + 1] = 0
  end
  for _ = 1, tonumber(ARGV[2 * d + 1]) do
    local id = ARGV[at]
    local body = redis.call('HGET', msgs, id)
    if body then
      local flag = 2
      if rseq > 0 then
        local seq = tonumber(redis.call('ZSCORE', inbox, id))
        if seq and seq <= rseq then flag = 1 end
      end
      drop(inbox, msgs, collapse, id, body)
      res[#res + 1] = flag
    else
      res[#res + 1] = 0
    end
    at = at + 1
  end
end
return res
`,
  },

  /**
   * Read a device's stored messages with seq > afterSeq, oldest first, deleting expired ones.
   * KEYS: inbox, msgs, collapse. ARGV: now ms, afterSeq, limit.
   * Returns {expiredCount, {seq1, body1, seq2, body2, ...}}.
   */
  pgReplay: {
    numberOfKeys: 3,
    lua: `${dropMessageLua}${replayLua}
return replay(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]))
`,
  },

  /**
   * Claim presence of a device for a gateway session, record the tags/alias it said in hello,
   * and read the first page of its inbox, all at one instant.
   * KEYS: meta, inbox, msgs, collapse. ARGV: gw, sess, key TTL ms, set tags ('1'/'0'), tags JSON,
   * set alias ('1'/'0'), alias, now ms, replay limit.
   * Returns {previous gw, previous sess, learned hb, previous tags JSON, previous alias, last seq,
   * expired count, {seq, body, ...}, index mark ('' = none; see index-scripts.ts pgBucketIndex)}.
   */
  pgClaim: {
    numberOfKeys: 4,
    lua: `${dropMessageLua}${replayLua}
local meta = KEYS[1]
local old = redis.call('HMGET', meta, 'gw', 'sess', 'hb', 'tags', 'alias', 'seq', 'ix')
redis.call('HSET', meta, 'gw', ARGV[1], 'sess', ARGV[2])
if ARGV[4] == '1' then redis.call('HSET', meta, 'tags', ARGV[5]) end
if ARGV[6] == '1' then redis.call('HSET', meta, 'alias', ARGV[7]) end
redis.call('PEXPIRE', meta, tonumber(ARGV[3]))
local page = replay(KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[8]), '0', tonumber(ARGV[9]))
return {old[1] or '', old[2] or '', old[3] or '', old[4] or '', old[5] or '', tonumber(old[6] or '0'), page[1], page[2], old[7] or ''}
`,
  },

  /**
   * Release presence if this session still holds it; remember the learned heartbeat.
   * KEYS: meta. ARGV: sess, hb ms, now ms. Returns 1 if released, 0 if another session holds it.
   */
  pgRelease: {
    numberOfKeys: 1,
    lua: `
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'hb', ARGV[2]) end
redis.call('HSET', KEYS[1], 'seen', ARGV[3])
if redis.call('HGET', KEYS[1], 'sess') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'gw', 'sess')
  return 1
end
return 0
`,
  },

  /**
   * GCRA (generic cell rate algorithm), the standard leaky bucket. KEYS: bucket.
   * ARGV: emission interval ms (1000 / rate per second), burst (cells), cost (cells).
   * Uses the Redis clock, so every caller shares one time base.
   * Returns {allowed 1/0, retryAfterMs, remaining cells}.
   */
  pgGcra: {
    numberOfKeys: 1,
    lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local newTat = tat + interval * cost
local allowAt = newTat - interval * burst
if allowAt > now then
  return {0, math.ceil(allowAt - now), math.max(0, math.floor((now - (tat - interval * burst)) / interval))}
end
redis.call('SET', KEYS[1], tostring(newTat), 'PX', math.ceil(newTat - now) + 1000)
return {1, 0, math.floor((now - allowAt) / interval)}
`,
  },

  /**
   * Admit n messages to one shard of an app's rate limit (common/ratelimit/app-limit.ts).
   * KEYS: tat, queue (one shard, see keys.appLimitShard). ARGV: emission interval ms of the
   * shard, burst of the shard (cells), the releaser's burst (cells one release call takes at
   * most: the estimate follows it), queue bound (0 = unbounded: the caller checked room
   * already), n, then n deferred entries ("<exp>|<acceptedAt>|<device>|<body>", in acceptance
   * order). A message goes now only while the shard has no queue (acceptance order per device:
   * nothing overtakes what waits); the first `allowed` messages take cells, the rest are queued.
   * Returns {allowed (-1 = queue full, nothing taken), deferred, queue length after, estimated
   * release time (ms, Redis clock) of the last deferred one (0 = none), retry-after ms when full,
   * cells remaining now (0 while anything waits: a new message would wait too), ms until the
   * bucket is full again, now}.
   * Cells are counted with a 1e-6 tolerance: times are ~1.8e12 ms, so now + interval - now is not
   * exactly interval in floating point, and a shard whose burst share is one cell would
   * otherwise never see a whole cell (it stalled, found by the 5R/s gateway test).
   */
  pgLimitAdmit: {
    numberOfKeys: 2,
    lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst, relBurst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bound, n = tonumber(ARGV[4]), tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local avail = math.floor((now + burst * interval - tat) / interval + 1e-6)
if avail < 0 then avail = 0 end
local qlen = redis.call('LLEN', KEYS[2])
local allowed = 0
if qlen == 0 then allowed = math.min(n, avail) end
local rest = n - allowed
if bound > 0 and rest > 0 and qlen + rest > bound then
  local wait = math.max(0, tat - burst * interval + interval - now)
  return {-1, 0, qlen, 0, math.ceil(wait + (qlen + rest - bound) * interval), 0, math.ceil(tat - now), now}
end
if allowed > 0 then
  tat = tat + allowed * interval
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
end
local eta = 0
if rest > 0 then
  for i = n - rest + 1, n do redis.call('RPUSH', KEYS[2], ARGV[5 + i]) end
  qlen = qlen + rest
  eta = math.max(now, tat + qlen * interval - relBurst * interval)
end
local remaining = avail - allowed
if qlen > 0 then remaining = 0 end
return {allowed, rest, qlen, math.ceil(eta), 0, remaining, math.ceil(tat - now), now}
`,
  },

  /**
   * Release what one shard's budget allows now, for the gateway holding the shard's lease.
   * KEYS: tat, queue, releasing, lease. ARGV: lease token, lease ms, emission interval ms,
   * burst, most messages per call, cells already paid for (lent by other shards, pgLimitLend;
   * used first, unused ones are simply not spent). A batch stays in `releasing` until the holder has stored it
   * (pgLimitReleased): a holder that dies leaves it there, and the next holder stores it again
   * first (stores are idempotent by message id). Expired entries are released without a cell.
   * Returns {code, wait ms until the next cell (-1 = queue empty), entries, queue length}:
   * code -1 = another gateway holds the lease (wait = its remaining ms), 0 = nothing now,
   * 1 = an unfinished batch to store again, 2 = a new batch.
   */
  pgLimitRelease: {
    numberOfKeys: 4,
    lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, leaseMs, interval, burst, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local prepaid = tonumber(ARGV[6] or '0')
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= token then return {-1, redis.call('PTTL', KEYS[4]), {}, 0} end
local pending = redis.call('LRANGE', KEYS[3], 0, -1)
if #pending > 0 then
  redis.call('SET', KEYS[4], token, 'PX', leaseMs)
  return {1, 0, pending, redis.call('LLEN', KEYS[2])}
end
local qlen = redis.call('LLEN', KEYS[2])
if qlen == 0 then
  if holder then redis.call('DEL', KEYS[4]) end
  return {0, -1, {}, 0}
end
redis.call('SET', KEYS[4], token, 'PX', leaseMs)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local avail = math.floor((now + burst * interval - tat) / interval + 1e-6)
if avail < 0 then avail = 0 end
if avail + prepaid <= 0 then
  return {0, math.ceil(tat - burst * interval + interval - now), {}, qlen}
end
local take, out = 0, {}
local cap = math.min(avail + prepaid, max)
while take < cap and #out < 2 * max do
  local e = redis.call('LPOP', KEYS[2])
  if not e then break end
  out[#out + 1] = e
  local exp = tonumber(string.match(e, '^(%d+)|'))
  if exp == nil or exp >= now then take = take + 1 end
end
if #out > 0 then redis.call('RPUSH', KEYS[3], unpack(out)) end
local own = take - prepaid
if own > 0 then
  tat = tat + own * interval
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
end
qlen = redis.call('LLEN', KEYS[2])
local wait = -1
if qlen > 0 then wait = math.max(0, math.ceil(tat - burst * interval + interval - now)) end
return {2, wait, out, qlen}
`,
  },

  /**
   * Lend cells of an idle shard to a busy one (work conservation: an app whose devices do not
   * fill every shard still gets its whole rate). KEYS: tat, queue of the lender. ARGV: emission
   * interval ms, lending burst (cells; small, so an idle shard's saved burst is not dumped at
   * once), most cells wanted. A shard with its own queue lends nothing. Every cell sent is taken
   * from exactly one shard's bucket, so the shards together still never exceed the app's rate.
   * Returns {cells lent, lender's queue length}.
   */
  pgLimitLend: {
    numberOfKeys: 2,
    lua: `
local qlen = redis.call('LLEN', KEYS[2])
if qlen > 0 then return {0, qlen} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local avail = math.floor((now + burst * interval - tat) / interval + 1e-6)
local k = math.min(want, avail)
if k <= 0 then return {0, 0} end
tat = tat + k * interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return {k, 0}
`,
  },

  /**
   * The lease holder stored its batch: forget it. KEYS: releasing, lease. ARGV: lease token.
   * Returns 1, or 0 when the lease was lost meanwhile (the next holder stores the batch again).
   */
  pgLimitReleased: {
    numberOfKeys: 2,
    lua: `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`,
  },

  /**
   * Adds to a counter of a hash only while the hash exists: a message status that has expired,
   * or a campaign's progress that was deleted, is not created again (it would have no TTL). Used
   * for the fate of an older message on its own status (replaced through a collapse key, evicted
   * from a full inbox) and for a campaign's delivered and acked counts.
   * KEYS: the hash. ARGV: counter, increment. Returns the new value, or 0.
   */
  pgIncrIfExists: {
    numberOfKeys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
end
return 0
`,
  },

  /**
   * Creates a message's status: each field only where the hash has none yet (a request finishing
   * an abandoned one under the same id keeps what is there), and its lifetime. One command, not a
   * MULTI of seven: every push makes this call.
   * KEYS: the status hash. ARGV: lifetime (ms), then field, value pairs. Returns 1.
   */
  pgStatusCreate: {
    numberOfKeys: 1,
    lua: `
for i = 2, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`,
  },
} as const;

export type ScriptName = keyof typeof scripts;

/** Scripts without numberOfKeys take the key count as their first argument. */
export type ScriptSpec = { lua: string; numberOfKeys?: number };
