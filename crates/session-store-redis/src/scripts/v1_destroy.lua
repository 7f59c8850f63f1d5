-- V1 destroy: deletes whatever is under the key (a foreign value too), but a supersede marker.
-- KEYS[1]: the session key. No ARGV.
-- Returns the successor's key when it is a supersede marker, else DEL's count (1 or 0). A
-- marker is left to its TTL (the supersede grace): it holds no data, and a destroy run twice
-- (its first reply lost, and the command sent again) names the successor again instead of
-- finding nothing, so the logout still reaches the session a racing login made.
local s = redis.pcall('HGET', KEYS[1], '_sup')
if type(s) == 'string' then return s end
return redis.call('DEL', KEYS[1])
