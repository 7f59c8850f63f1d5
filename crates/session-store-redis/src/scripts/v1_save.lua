-- V1 save: applies a delta (or a whole replacement) to a live session hash.
-- KEYS[1]: the session key.
-- ARGV: ttl_ms, replace (0|1), limit, meta, n_removed, removed field..., field, value, ...
-- Returns 1 (updated), 0 (no record), 2 (superseded) or -size (the record would outgrow
-- `limit`; nothing written).
--
-- `_n` is an upper bound of the data's bytes. The common save (keys set, none removed) counts
-- each key it sets in full, whether or not it was there before, and makes three Redis calls
-- (HGET, PEXPIRE, HSET). A save that removes keys or replaces the data, or one whose bound
-- passes the limit, works the size out from the changed keys' lengths (one HSTRLEN each, as
-- every save did before), and when that still passes, counts all the fields: a save is refused
-- only on a true count, and the count it then stores is exact again.
-- `TRACK` (set by the line before this file) ends a write with a read of the key, so a
-- client cache that runs the save on its tracking connection goes on tracking the key.
local k = KEYS[1]
local n = tonumber(redis.call('HGET', k, '_n'))
if n and (n < 0 or n ~= math.floor(n)) then n = nil end
-- The common save (keys set, none removed, a usable count, few enough fields for one HSET):
-- the bound, and three Redis calls.
if n and ARGV[2] == '0' and ARGV[5] == '0' and #ARGV <= 1001 then
  local size = n
  for i = 6, #ARGV, 2 do size = size + #ARGV[i] + #ARGV[i + 1] end
  if size <= tonumber(ARGV[3]) then
    redis.call('PEXPIRE', k, ARGV[1])
    redis.call('HSET', k, '_m', ARGV[4], '_n', string.format('%d', size), unpack(ARGV, 6))
    if TRACK then redis.call('PTTL', k) end
    return 1
  end
end
-- The data's bytes, counted from the fields (a record from before `_n`, one whose `_n`
-- another program changed, or a bound past the limit).
local function recount()
  local c = 0
  local h = redis.call('HGETALL', k)
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'd:' then c = c + #h[i] + #h[i + 1] end
  end
  return c
end
local replace = ARGV[2] == '1'
local nrem = 0
if ARGV[5] ~= '0' then nrem = tonumber(ARGV[5]) end
local p = 6 + nrem
-- The size after the write from `n` before it, each changed key's old length looked up.
local function after(n)
  local size = 0
  if not replace then
    size = n
    for i = 6, 5 + nrem do
      local l = redis.call('HSTRLEN', k, ARGV[i])
      if l > 0 then size = size - #ARGV[i] - l end
    end
  end
  for i = p, #ARGV, 2 do
    local l = 0
    if not replace then l = redis.call('HSTRLEN', k, ARGV[i]) end
    if l > 0 then size = size - l + #ARGV[i + 1] else size = size + #ARGV[i] + #ARGV[i + 1] end
  end
  return size
end
local limit = tonumber(ARGV[3])
local size
local counted = replace
if not n then
  if redis.call('EXISTS', k) == 0 then return 0 end
  if redis.call('HEXISTS', k, '_sup') == 1 then return 2 end
  size = after(recount())
  counted = true
else
  -- The bound, worked out from the changed keys' lengths.
  size = after(n)
end
if size > limit and not counted then
  -- Refused only on a true count: a bound or a counter set too high can't block the session.
  size = after(recount())
end
if size > limit then return -size end
redis.call('PEXPIRE', k, ARGV[1])
if replace then
  local old = {}
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 2) == 'd:' then old[#old + 1] = f end
  end
  for i = 1, #old, 1000 do
    redis.call('HDEL', k, unpack(old, i, math.min(i + 999, #old)))
  end
end
for i = 6, 5 + nrem, 1000 do
  redis.call('HDEL', k, unpack(ARGV, i, math.min(i + 999, 5 + nrem)))
end
local last = math.min(p + 995, #ARGV)
redis.call('HSET', k, '_m', ARGV[4], '_n', string.format('%d', size), unpack(ARGV, p, last))
for i = last + 1, #ARGV, 1000 do
  redis.call('HSET', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if TRACK then redis.call('PTTL', k) end
return 1
