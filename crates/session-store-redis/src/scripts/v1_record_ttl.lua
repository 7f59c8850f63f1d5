-- The time a live V1 record has left (read-only): a hash with its meta field, not a supersede
-- marker and not another program's value.
-- KEYS[1]: the record.
-- Returns its PTTL in ms, or -2 when no live record is there.
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  return -2
end
if redis.call('HEXISTS', KEYS[1], '_m') == 0 then
  return -2
end
return redis.call('PTTL', KEYS[1])
