-- V1 touch: extends a live session hash and rewrites its meta.
-- KEYS[1]: the session key.
-- ARGV: ttl_ms, meta.
-- Returns 1 (updated), 0 (no record) or 2 (superseded).
if redis.call('HEXISTS', KEYS[1], '_sup') == 1 then return 2 end
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], '_m', ARGV[2])
-- A write drops the key from every client's tracking table, the writer's too: this read,
-- in the same atomic step, has a client cache that runs the touch (and keeps its copy) go on
-- tracking the key, so the next write by anyone still reaches it.
redis.call('PTTL', KEYS[1])
return 1
