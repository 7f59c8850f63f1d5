-- V1 supersede: replaces a live session hash by a marker naming its successor.
-- KEYS[1]: the session key.
-- ARGV: successor key, ttl_ms.
-- Returns 1 (replaced), 0 (no record) or 2 (already superseded). A marker that already names
-- this successor answers 1: it is this call's own first run, whose reply a dropped connection
-- lost (successor keys are fresh random ids, so no other call names the same one).
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then return 0 end
local s = redis.call('HGET', k, '_sup')
if s == ARGV[1] then return 1 end
if s then return 2 end
redis.call('DEL', k)
redis.call('HSET', k, '_v', '1', '_sup', ARGV[1])
redis.call('PEXPIRE', k, ARGV[2])
return 1
