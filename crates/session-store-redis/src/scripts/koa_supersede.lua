-- koa supersede: replaces a live koa record by a marker naming its successor.
-- KEYS[1]: the session key.
-- ARGV: marker json, ttl_ms.
-- Returns 1 (replaced), 0 (no record) or 2 (already superseded).
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.sub(v, 1, 15) == '{"_superseded":' then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
