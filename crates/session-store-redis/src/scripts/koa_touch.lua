-- koa touch: extends a live koa record and rewrites its `_expire`.
-- KEYS[1]: the session key.
-- ARGV: ttl_ms, new _expire ('' for none).
-- Returns 1 (updated), 0 (no record) or 2 (superseded).
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.sub(v, 1, 15) == '{"_superseded":' then return 2 end
if ARGV[2] ~= '' then
  local last_s, last_e = nil, nil
  local init = 1
  while true do
    local s, e = string.find(v, '[,{]"_expire":[-%d%.eE+]+', init)
    if not s then break end
    last_s, last_e = s, e
    init = e + 1
  end
  if last_s then
    v = string.sub(v, 1, last_s) .. '"_expire":' .. ARGV[2] .. string.sub(v, last_e + 1)
  end
end
redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
return 1
