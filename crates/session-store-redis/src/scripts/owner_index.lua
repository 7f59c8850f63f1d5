-- Adds or rewrites one entry of an owner's index, drops the owner's lapsed entries, and makes
-- the index expire with its latest entry: the index cleans itself, with no keyspace
-- notifications and no background task. (owner_prelude.lua is prepended: `settle`.)
-- KEYS[1]: sorted set, handle -> until (ms); KEYS[2]: hash, handle -> entry JSON. Both carry
-- the owner's hash tag, so they share a Cluster slot.
-- ARGV[1]: now (ms), ARGV[2]: until (ms), ARGV[3]: handle, ARGV[4]: entry JSON.
-- Returns the number of entries.
-- GT: a late write of an earlier time never shortens an entry below its record's expiry.
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return settle(tonumber(ARGV[1]))
