-- V1 supersede: replaces a live session hash by a marker naming its successor.
-- KEYS[1]: the session key.
-- ARGV: successor key, ttl_ms.
-- Returns 1 (replaced), 0 (no record) or 2 (already superseded).
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('HEXISTS', k, '_sup') == 1 then return 2 end
redis.call('DEL', k)
redis.call('HSET', k, '_v', '1', '_sup', ARGV[1])
redis.call('PEXPIRE', k, ARGV[2])
return 1
