-- V1 create: writes a new session hash, only if the key is absent.
-- KEYS[1]: the session key.
-- ARGV: ttl_ms, meta, data_bytes, field, value, field, value, ...
-- Returns 1 (created) or 0 (the key exists); a failing write (e.g. OOM) deletes what was
-- written and returns the error. A record of exactly these fields and values answers 1: it
-- is this call's own first run, whose reply a dropped connection lost (anything else under
-- the key, even of the same size, is a collision).
local k = KEYS[1]
if redis.call('EXISTS', k) == 1 then
  local n = redis.pcall('HLEN', k)
  if type(n) ~= 'number' or n ~= 3 + (#ARGV - 3) / 2 then return 0 end
  if redis.call('HGET', k, '_m') ~= ARGV[2] or redis.call('HGET', k, '_n') ~= ARGV[3] then
    return 0
  end
  for i = 4, #ARGV, 2 do
    if redis.call('HGET', k, ARGV[i]) ~= ARGV[i + 1] then return 0 end
  end
  return 1
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
