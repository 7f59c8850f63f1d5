-- V1 save: applies a delta (or a whole replacement) to a live session hash.
-- KEYS[1]: the session key.
-- ARGV: ttl_ms, replace (0|1), limit, meta, n_removed, removed field..., field, value, ...
-- Returns 1 (updated), 0 (no record), 2 (superseded) or -size (the record would outgrow
-- `limit`; nothing written).
local k = KEYS[1]
-- The data's bytes, counted from the fields (a record from before `_n`, or one whose `_n`
-- another program changed).
local function recount()
  local c = 0
  local h = redis.call('HGETALL', k)
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'd:' then c = c + #h[i] + #h[i + 1] end
  end
  return c
end
local replace = ARGV[2] == '1'
local nrem = tonumber(ARGV[5])
local p = 6 + nrem
-- The size after the write, from the size before it.
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
local n = tonumber(redis.call('HGET', k, '_n'))
local counted = false
if not n or n < 0 or n ~= math.floor(n) then
  if redis.call('EXISTS', k) == 0 then return 0 end
  if redis.call('HEXISTS', k, '_sup') == 1 then return 2 end
  n = recount()
  counted = true
end
local size = after(n)
if size > tonumber(ARGV[3]) and not counted and not replace then
  -- Refused only on a true count: a counter set too high can't block the session for good.
  size = after(recount())
end
if size > tonumber(ARGV[3]) then return -size end
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
redis.call('HSET', k, '_m', ARGV[4], '_n', tostring(size), unpack(ARGV, p, last))
for i = last + 1, #ARGV, 1000 do
  redis.call('HSET', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
