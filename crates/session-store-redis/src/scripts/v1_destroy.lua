-- V1 destroy: deletes whatever is under the key (a foreign value too).
-- KEYS[1]: the session key. No ARGV.
-- Returns the successor's key when it was a supersede marker, else DEL's count (1 or 0).
local s = redis.pcall('HGET', KEYS[1], '_sup')
local n = redis.call('DEL', KEYS[1])
if type(s) == 'string' then return s end
return n
