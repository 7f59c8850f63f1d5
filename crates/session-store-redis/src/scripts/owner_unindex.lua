-- Removes entries of an owner's index by handle, drops the lapsed ones, and makes the index
-- expire with its latest entry, or deletes it when none is left. (owner_prelude.lua is
-- prepended: `settle`.)
-- KEYS[1]: sorted set, handle -> until (ms); KEYS[2]: hash, handle -> entry JSON.
-- ARGV[1]: now (ms), ARGV[2..]: handles.
-- Returns the number of entries left.
for i = 2, #ARGV, 500 do
  local last = math.min(i + 499, #ARGV)
  redis.call('ZREM', KEYS[1], unpack(ARGV, i, last))
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, last))
end
return settle(tonumber(ARGV[1]))
