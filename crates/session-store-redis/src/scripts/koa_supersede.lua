-- koa supersede: replaces a live koa record by a marker naming its successor.
-- KEYS[1]: the session key.
-- ARGV: marker json, ttl_ms.
-- Returns 1 (replaced), 0 (no record) or 2 (already superseded). The very marker this call
-- writes answers 1: it is this call's own first run, whose reply a dropped connection lost
-- (the marker names a fresh random successor, so no other call writes the same one).
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v == ARGV[1] then return 1 end
if string.sub(v, 1, 15) == '{"_superseded":' then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
