local prefix, seq = ARGV[1], ARGV[2]
local evk = prefix .. ':dlq:ev:' .. seq
if not head_is(evk, ARGV[3]) then return 0 end
local groups = tonumber(ARGV[4])
if not fields_current(groups) then return -1 end
write_groups(groups)
redis.call('LPOP', evk)
if redis.call('LLEN', evk) == 0 then forget(prefix, seq) end
return 1
