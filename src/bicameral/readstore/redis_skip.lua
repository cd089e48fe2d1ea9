local prefix, seq = ARGV[1], ARGV[2]
local evk = prefix .. ':dlq:ev:' .. seq
if redis.call('LLEN', evk) ~= tonumber(ARGV[3]) or not head_is(evk, ARGV[4]) then return 0 end
forget(prefix, seq)
redis.call('RPUSH', prefix .. ':dlq:skipped', ARGV[5])
return 1
