-- koa destroy: deletes whatever is under the key (a foreign value too), but a supersede marker.
-- KEYS[1]: the session key. No ARGV.
-- Returns the successor's key when it is a supersede marker, else DEL's count (1 or 0). A
-- marker is left to its TTL (the supersede grace): it holds no data, and a destroy run twice
-- (its first reply lost, and the command sent again) names the successor again instead of
-- finding nothing, so the logout still reaches the session a racing login made.
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'string' and string.sub(v, 1, 15) == '{"_superseded":' then
  local ok, obj = pcall(cjson.decode, v)
  if ok and type(obj['_superseded']) == 'string' then return obj['_superseded'] end
end
return redis.call('DEL', KEYS[1])
