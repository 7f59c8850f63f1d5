-- Reads an owner's entries that have not lapsed (read-only).
-- KEYS[1]: sorted set, handle -> until (ms); KEYS[2]: hash, handle -> entry JSON.
-- ARGV[1]: now (ms).
-- Returns a flat array: handle, until, entry JSON, handle, until, entry JSON, ...
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
local out = {}
for i = 1, #members, 2 do
  local info = redis.call('HGET', KEYS[2], members[i])
  if info then
    out[#out + 1] = members[i]
    out[#out + 1] = members[i + 1]
    out[#out + 1] = info
  end
end
return out
