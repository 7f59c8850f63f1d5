-- koa destroy: deletes whatever is under the key (a foreign value too).
-- KEYS[1]: the session key. No ARGV.
-- Returns the successor's key when it was a supersede marker, else DEL's count (1 or 0).
local v = redis.pcall('GET', KEYS[1])
local n = redis.call('DEL', KEYS[1])
if type(v) == 'string' and string.sub(v, 1, 15) == '{"_superseded":' then
  local ok, obj = pcall(cjson.decode, v)
  if ok and type(obj['_superseded']) == 'string' then return obj['_superseded'] end
end
return n
