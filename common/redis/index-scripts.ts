/**
 * The tag-index scripts (common/redis/app-index.ts writes the indexes, common/push/target.ts
 * reads them), registered on every connection like scripts.ts: EVALSHA, so a hello or a push's
 * 1,024 bucket reads send a 40-byte hash, not the script text, and Redis does not hash the text
 * again on every call. Each takes its key count as its first argument (variable keys).
 */

/**
 * The app-wide half of a registration change (the app's slot): the tag catalogue and its
 * bound, alias sets, and removal from the legacy one-slot sets (so they never hold a membership
 * the buckets dropped while migration runs). KEYS: appTags, legacyAppDevices, then one legacy tag
 * key per removed tag, then the old alias key (when it is left) and the new alias key (when it is
 * set). ARGV: device, cap (0 = none), forget (1: leave the app), nAdd, nRemove, aliasOut, aliasIn,
 * tag names (added, then removed). The per-app tag counts drop tags that no device carries any
 * more, and the cap counts distinct tags, so the catalogue is bounded by the cap, not by what
 * devices once sent. Returns 0 (nothing written) when added tags would take the app over its cap.
 */
const appIndexLua = `
local device, cap, forget = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local nAdd, nRemove = tonumber(ARGV[4]), tonumber(ARGV[5])
local aliasOut, aliasIn = ARGV[6] == '1', ARGV[7] == '1'
local T = 7
if cap > 0 and nAdd > 0 then
  local fresh = 0
  for i = 1, nAdd do
    if not redis.call('ZSCORE', KEYS[1], ARGV[T + i]) then fresh = fresh + 1 end
  end
  if fresh > 0 and redis.call('ZCARD', KEYS[1]) + fresh > cap then return 0 end
end
if forget then redis.call('ZREM', KEYS[2], device) end
for i = 1, nAdd do redis.call('ZINCRBY', KEYS[1], 1, ARGV[T + i]) end
for i = 1, nRemove do
  redis.call('ZREM', KEYS[2 + i], device)
  if tonumber(redis.call('ZINCRBY', KEYS[1], -1, ARGV[T + nAdd + i])) <= 0 then
    redis.call('ZREM', KEYS[1], ARGV[T + nAdd + i])
  end
end
local k = 3 + nRemove
if aliasOut then redis.call('SREM', KEYS[k], device); k = k + 1 end
if aliasIn then redis.call('SADD', KEYS[k], device) end
return 1
`;

/**
 * The bucket half (the device's bucket slot, the slot of its meta/inbox keys): membership, and
 * then the device's index mark: `ix` in its meta hash, the registration the indexes now hold
 * (app-index.ts registrationMark). The mark is written last, by the last step of a change, so a
 * hello finds a registration it may skip only when a whole change went through (pgClaim has
 * already written the announced tags to the meta hash before the indexes are written).
 * KEYS: bucketDevices, the device's meta, then one bucket tag key per tag name (added and
 * kept, then removed). ARGV: device, seenAt, forget, nIn (added + kept), mark.
 */
const bucketIndexLua = `
local device, seenAt, forget, nIn = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
if forget then redis.call('ZREM', KEYS[1], device) else redis.call('ZADD', KEYS[1], seenAt, device) end
for i = 3, #KEYS do
  if i - 2 <= nIn then redis.call('ZADD', KEYS[i], seenAt, device) else redis.call('ZREM', KEYS[i], device) end
end
if forget then
  redis.call('HDEL', KEYS[2], 'ix')
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  -- A meta hash that is gone (expired) is not created again without its TTL.
  redis.call('HSET', KEYS[2], 'ix', ARGV[5])
end
return 1
`;

/**
 * Evaluates a tag expression over the sets of one slot. KEYS: the device set (the universe of
 * `!`), then one set per tag. ARGV: limit (0 = none), then the expression in postfix: `t<i>`
 * pushes tag set i (KEYS[1 + i]), `u` the device set, `n` complements the top, `a<k>`/`o<k>`
 * intersect/unite the top k. Returns the matching device ids, or the number -1 when more than
 * `limit` match.
 */
const resolveLua = `
local limit = tonumber(ARGV[1])
if #ARGV == 2 then
  local key = ARGV[2] == 'u' and KEYS[1] or KEYS[1 + tonumber(string.sub(ARGV[2], 2))]
  if limit > 0 and redis.call('ZCARD', key) > limit then return -1 end
  return redis.call('ZRANGE', key, 0, -1)
end
local function members(key)
  local s = {}
  for _, d in ipairs(redis.call('ZRANGE', key, 0, -1)) do s[d] = true end
  return s
end
local stack, universe = {}, nil
local function all() if not universe then universe = members(KEYS[1]) end return universe end
for i = 2, #ARGV do
  local op, n = string.sub(ARGV[i], 1, 1), tonumber(string.sub(ARGV[i], 2))
  if op == 't' then stack[#stack + 1] = members(KEYS[1 + n])
  elseif op == 'u' then stack[#stack + 1] = all()
  elseif op == 'n' then
    local top, out = stack[#stack], {}
    for d in pairs(all()) do if not top[d] then out[d] = true end end
    stack[#stack] = out
  else
    local args = {}
    for j = n, 1, -1 do args[j] = stack[#stack]; stack[#stack] = nil end
    local out = {}
    if op == 'a' then
      for d in pairs(args[1]) do
        local inAll = true
        for j = 2, n do if not args[j][d] then inAll = false; break end end
        if inAll then out[d] = true end
      end
    else
      for j = 1, n do for d in pairs(args[j]) do out[d] = true end end
    end
    stack[#stack + 1] = out
  end
end
local res = {}
for d in pairs(stack[1]) do
  res[#res + 1] = d
  if limit > 0 and #res > limit then return -1 end
end
return res
`;

export const indexScripts = {
  pgAppIndex: { lua: appIndexLua },
  pgBucketIndex: { lua: bucketIndexLua },
  pgResolve: { lua: resolveLua },
};

export interface IndexScriptCommands {
  /** numkeys = 2 + removed tags + alias keys; see appIndexLua. 0: refused by the tag cap. */
  pgAppIndex(numkeys: number, ...keysThenArgs: (string | number)[]): Promise<number>;
  /** numkeys = 2 + tag keys; see bucketIndexLua. */
  pgBucketIndex(numkeys: number, ...keysThenArgs: (string | number)[]): Promise<number>;
  /** numkeys = 1 + tag keys; see resolveLua. Device ids, or -1 over the limit. */
  pgResolve(numkeys: number, ...keysThenArgs: (string | number)[]): Promise<string[] | number>;
}
