local cp = redis.call('HGET', KEYS[1], ARGV[1])
if (tonumber(cp) or 0) ~= tonumber(ARGV[2]) then return 0 end
local groups = tonumber(ARGV[4])
if not fields_current(groups) then return -1 end
local p = 5 + 5 * groups
local prefix, nparks = ARGV[p], tonumber(ARGV[p + 1])
if not parks_fit(prefix, p + 2, nparks) then return 0 end
write_groups(groups)
write_parks(prefix, p + 2, nparks)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
