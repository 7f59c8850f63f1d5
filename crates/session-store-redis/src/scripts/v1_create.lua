-- V1 create: writes a new session hash, only if the key is absent.
-- KEYS[1]: the session key.
-- ARGV: ttl_ms, meta, data_bytes, field, value, field, value, ...
-- Returns 1 (created) or 0 (the key exists); a failing write (e.g. OOM) deletes what was
-- written and returns the error. A record with this very meta and byte count answers 1: it is
-- this call's own first run, whose reply a dropped connection lost (the key is a fresh random
-- id nobody else writes).
local k = KEYS[1]
if redis.call('EXISTS', k) == 1 then
  local m = redis.pcall('HMGET', k, '_m', '_n')
  if type(m) == 'table' and m[1] == ARGV[2] and m[2] == ARGV[3] then return 1 end
  return 0
end
redis.call('HSET', k, '_v', '1', '_m', ARGV[2], '_n', ARGV[3])
redis.call('PEXPIRE', k, ARGV[1])
for i = 4, #ARGV, 1000 do
  local r = redis.pcall('HSET', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  if type(r) == 'table' and r.err then
    redis.call('DEL', k)
    return r
  end
end
return 1
