-- Shared by the owner-index writes (prepended to each).
--
-- `drop_lapsed(now)` drops the entries whose time is not after `now` from the sorted set
-- KEYS[1] and the hash KEYS[2] (in chunks: Lua's unpack has a stack limit).
local function drop_lapsed(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for i = 1, #gone, 500 do
    redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 499, #gone)))
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  end
end

-- `settle(now)` drops the lapsed entries, and sets both keys' TTL to the latest entry left (or
-- deletes them when none is left). Returns the number of entries left.
local function settle(now)
  drop_lapsed(now)
  local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if #latest == 0 then
    redis.call('DEL', KEYS[1], KEYS[2])
    return 0
  end
  -- A foreign score (+inf, or beyond ten years) must not overflow PEXPIRE into a delete.
  local left = tonumber(latest[2]) - now
  if left ~= left or left > 315576000000 then
    left = 315576000000
  end
  local ttl = string.format('%d', math.max(left, 1))
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return redis.call('ZCARD', KEYS[1])
end
