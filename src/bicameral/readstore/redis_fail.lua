local prefix, seq = ARGV[1], ARGV[2]
local seqk = prefix .. ':dlq:seq:' .. seq
if not head_is(prefix .. ':dlq:ev:' .. seq, ARGV[3]) then return 0 end
redis.call('HINCRBY', seqk, 'attempts', ARGV[4])
redis.call('HSET', seqk, 'error', ARGV[5], 'message', ARGV[6], 'traceback', ARGV[7],
  'last_failed', ARGV[8])
return 1
