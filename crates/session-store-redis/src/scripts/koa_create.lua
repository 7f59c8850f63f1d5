-- koa create: writes a new record only if nothing is under the key.
-- KEYS[1]: the session key.
-- ARGV: the record's JSON, ttl_ms.
-- Returns 1 (created) or 0 (the key exists). The very JSON this call writes answers 1: it is
-- this call's own first run, whose reply a dropped connection lost (the key is a fresh random
-- id nobody else writes).
local v = redis.pcall('GET', KEYS[1])
if v == ARGV[1] then return 1 end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
