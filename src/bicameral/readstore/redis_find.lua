local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])
local keys, docs = {}, {}
local skip = tonumber(ARGV[3])
for i, m in ipairs(members) do keys[i] = string.sub(m, skip + 1) end
local i = 0
while i < #keys do
  local n = math.min(#keys - i, 500)
  local got = redis.call('HMGET', KEYS[2], unpack(keys, i + 1, i + n))
  for j = 1, n do docs[i + j] = got[j] end
  i = i + n
end
return {keys, docs}
