local found = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if string.sub(name, 1, #ARGV[2]) == ARGV[2] then
    local owner = redis.call('GET', ARGV[1] .. name)
    if owner then
      table.insert(found, name)
      table.insert(found, owner)
    else
      redis.call('SREM', KEYS[1], name)
    end
  end
end
return found
