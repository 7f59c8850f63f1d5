-- koa save: `SET XX` that never writes over a supersede marker.
-- KEYS[1]: the session key.
-- ARGV: json, ttl_ms.
-- Returns 1 (updated), 0 (no record) or 2 (superseded).
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.sub(v, 1, 15) == '{"_superseded":' then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
