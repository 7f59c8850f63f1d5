-- Files one entry of an owner's index under a session limit, deciding and writing in one
-- atomic step: however many logins race, the index never gains an entry beyond the limit. It
-- makes the decision of `session_core::store::decide`, over the entries left once the lapsed
-- ones and those the caller found dead are dropped. (owner_prelude.lua is prepended:
-- `drop_lapsed`, `settle`.)
-- KEYS[1]: sorted set, handle -> until (ms); KEYS[2]: hash, handle -> entry JSON. Both carry
-- the owner's hash tag, so they share a Cluster slot.
-- ARGV[1]: now (ms), ARGV[2]: until (ms), ARGV[3]: handle, ARGV[4]: entry JSON,
-- ARGV[5]: mode: 'refresh' (rewrite the entry only if the index has it), 'full' (over the
--   limit, write nothing and name the entries counted: a probe, or the Refuse policy), 'end'
--   (over the limit, remove the entries bound earliest to make room: EndOldest),
-- ARGV[6]: the limit (unused by 'refresh'),
-- ARGV[7]: the handle of the session this one replaces ('' for none): filed uncounted if the
--   index has it, else nothing is written ({3}),
-- ARGV[8..]: handles the caller found dead, removed before counting.
-- Returns a flat array: a code, then handle, entry JSON, handle, entry JSON, ...
--   {1}: filed (added, or rewritten: it was there already);
--   {2, ...}: filed after removing these entries (those without JSON are removed, not named);
--   {3}: 'refresh' of an entry the index does not have, or a replaced entry it does not have;
--   nothing written;
--   {4, ...}: over the limit, nothing written; the entries counted (those with JSON).
local now = tonumber(ARGV[1])
local handle = ARGV[3]
local mode = ARGV[5]
local replaces = ARGV[7]
if mode ~= 'refresh' and mode ~= 'full' and mode ~= 'end' then
  return redis.error_reply('owner_admit: unknown mode')
end

-- Lapsed entries never count; then the ones the caller found dead go.
drop_lapsed(now)
for i = 8, #ARGV, 500 do
  local last = math.min(i + 499, #ARGV)
  redis.call('ZREM', KEYS[1], unpack(ARGV, i, last))
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, last))
end

-- As owner_index.lua writes an entry. GT: a late write of an earlier time never shortens an
-- entry below its record's expiry.
local function file()
  redis.call('ZADD', KEYS[1], 'GT', ARGV[2], handle)
  redis.call('HSET', KEYS[2], handle, ARGV[4])
end

-- An entry the index has is rewritten, and counted once (it is not a new session).
if redis.call('ZSCORE', KEYS[1], handle) then
  file()
  settle(now)
  return {1}
end
-- A refresh never brings back an entry a limit (or a revoke) removed.
if mode == 'refresh' then
  settle(now)
  return {3}
end

local max = tonumber(ARGV[6])
if not max then
  return redis.error_reply('owner_admit: the limit is not a number')
end
-- A regenerate of a filed session takes its place, uncounted (whatever the limit is now); one
-- whose entry is gone (a limit removed it) is not filed again.
if replaces ~= '' then
  if redis.call('ZSCORE', KEYS[1], replaces) then
    file()
    settle(now)
    return {1}
  end
  settle(now)
  return {3}
end
local count = redis.call('ZCARD', KEYS[1])
if count < max then
  file()
  settle(now)
  return {1}
end

-- Over the limit: the entries counted, with their JSON (false where the hash has none).
local counted = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  counted[#counted + 1] = m
end
local infos = {}
for i = 1, #counted, 500 do
  local got = redis.call('HMGET', KEYS[2], unpack(counted, i, math.min(i + 499, #counted)))
  for j = 1, #got do
    infos[i + j - 1] = got[j]
  end
end

if mode == 'full' then
  local out = {4}
  for i, m in ipairs(counted) do
    if infos[i] then
      out[#out + 1] = m
      out[#out + 1] = infos[i]
    end
  end
  settle(now)
  return out
end

-- EndOldest. Whether a decoded JSON value is a u64, as the Rust side reads `c` and `s`.
local function is_u64(v)
  return type(v) == 'number' and v == v and v >= 0 and v < 18446744073709551616
    and v == math.floor(v)
end

-- An entry's bind time (`c`), or nil when its JSON is missing or not an entry: such an entry
-- is corrupt, sorts first, and is the first to go.
local function since_of(info)
  if not info then
    return nil
  end
  local ok, e = pcall(cjson.decode, info)
  if not ok or type(e) ~= 'table' or type(e.k) ~= 'string' or not is_u64(e.c)
    or not is_u64(e.s) then
    return nil
  end
  return e.c
end

-- Byte order, as Rust compares handles: Lua's `<` on strings follows the server's locale
-- (strcoll).
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- Bound earliest first, ties by handle; the corrupt ones before all. Handles are distinct
-- (members of one set), so this is a strict total order, as table.sort needs.
local function before(a, b)
  if a.since == nil or b.since == nil then
    if (a.since == nil) ~= (b.since == nil) then
      return a.since == nil
    end
  elseif a.since ~= b.since then
    return a.since < b.since
  end
  return bytes_before(a.handle, b.handle)
end

local order = {}
for i, m in ipairs(counted) do
  order[i] = {handle = m, info = infos[i], since = since_of(infos[i])}
end
table.sort(order, before)

-- Enough of them go that the entry fits: count + 1 - max (at least one, since count >= max).
local excess = math.min(count + 1 - max, #order)
local gone = {}
local out = {2}
for i = 1, excess do
  gone[i] = order[i].handle
  if order[i].info then
    out[#out + 1] = order[i].handle
    out[#out + 1] = order[i].info
  end
end
for i = 1, #gone, 500 do
  local last = math.min(i + 499, #gone)
  redis.call('ZREM', KEYS[1], unpack(gone, i, last))
  redis.call('HDEL', KEYS[2], unpack(gone, i, last))
end
file()
settle(now)
return out
