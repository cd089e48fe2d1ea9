local function split(s, n)
  local out, start = {}, 1
  for f = 1, n do
    local e = string.find(s, '\1', start, true)
    if e then
      out[f] = string.sub(s, start, e - 1)
      start = e + 1
    else
      out[f] = string.sub(s, start)
      start = #s + 2
    end
  end
  return out
end

local function fieldlists(nf)
  local out = {}
  for f = 1, nf do out[f] = {} end
  return out
end

local function apply(k, nf, adds, rems)
  for f = 1, nf do
    if #rems[f] > 0 then redis.call('ZREM', KEYS[k + 1 + f], unpack(rems[f])) end
    if #adds[f] > 0 then redis.call('ZADD', KEYS[k + 1 + f], unpack(adds[f])) end
  end
end

local function packed_of(stored)
  return string.sub(stored, 1, string.find(stored, '\2', 1, true) - 1)
end

-- Writes np documents (key, stored value, nf index values each) from items[a..], indexed.
local function put_indexed(items, k, nf, a, np)
  local docs, stride = KEYS[k + 1], 2 + nf
  for i = 0, np - 1, 200 do
    local n = math.min(np - i, 200)
    local base = a + stride * i
    local keys = {}
    for j = 0, n - 1 do keys[j + 1] = items[base + stride * j] end
    local olds = redis.call('HMGET', docs, unpack(keys))
    local bodies, adds, rems = {}, fieldlists(nf), fieldlists(nf)
    for j = 0, n - 1 do
      local at = base + stride * j
      local key = keys[j + 1]
      bodies[#bodies + 1] = key
      bodies[#bodies + 1] = items[at + 1]
      local packed = table.concat(items, '\1', at + 2, at + 1 + nf)
      local old = olds[j + 1]
      if old then old = packed_of(old) end
      if old ~= packed then
        local was = {}
        if old then was = split(old, nf) end
        for f = 1, nf do
          local new, w = items[at + 1 + f], was[f] or ''
          if w ~= new then
            if w ~= '' then table.insert(rems[f], w .. '\0' .. key) end
            if new ~= '' then
              local t = adds[f]
              t[#t + 1] = 0
              t[#t + 1] = new .. '\0' .. key
            end
          end
        end
      end
    end
    apply(k, nf, adds, rems)
    redis.call('HSET', docs, unpack(bodies))
  end
end

-- Deletes nd documents named at items[a..] with their index entries.
local function delete_indexed(items, k, nf, a, nd)
  local docs = KEYS[k + 1]
  for i = 0, nd - 1, 200 do
    local n = math.min(nd - i, 200)
    local keys = {unpack(items, a + i, a + i + n - 1)}
    local olds = redis.call('HMGET', docs, unpack(keys))
    local adds, rems = fieldlists(nf), fieldlists(nf)
    for j = 1, n do
      if olds[j] then
        local was = split(packed_of(olds[j]), nf)
        for f = 1, nf do
          if was[f] ~= '' then table.insert(rems[f], was[f] .. '\0' .. keys[j]) end
        end
      end
    end
    apply(k, nf, adds, rems)
    redis.call('HDEL', docs, unpack(keys))
  end
end

-- Writes np documents (key, body each) from items[1..], then deletes nd keys after them.
local function put_plain(items, k, np, nd)
  local docs = KEYS[k + 1]
  for i = 0, np - 1, 500 do
    local n = math.min(np - i, 500)
    redis.call('HSET', docs, unpack(items, 1 + 2 * i, 2 * (i + n)))
  end
  local d = 2 * np + 1
  for i = 0, nd - 1, 500 do
    local n = math.min(nd - i, 500)
    redis.call('HDEL', docs, unpack(items, d + i, d + i + n - 1))
  end
end

-- True when every group's indexed fields are still those the caller used (ARGV from 5).
local function fields_current(groups)
  local a, k = 5, 2
  for g = 1, groups do
    if (redis.call('GET', KEYS[k]) or '[]') ~= ARGV[a] then return false end
    k = k + 2 + tonumber(ARGV[a + 1])
    a = a + 5
  end
  return true
end

-- Writes every group's documents and deletes (ARGV from 5, KEYS from 2).
local function write_groups(groups)
  local a, k = 5, 2
  for g = 1, groups do
    local nf, np, nd = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local items = cmsgpack.unpack(ARGV[a + 4])
    if nf == 0 then
      put_plain(items, k, np, nd)
    else
      put_indexed(items, k, nf, 1, np)
      delete_indexed(items, k, nf, 1 + np * (2 + nf), nd)
    end
    k = k + 2 + nf
    a = a + 5
  end
end

-- True when the first parked event of list evk has id eid (items are id NUL event).
local function head_is(evk, eid)
  local head = redis.call('LINDEX', evk, 0)
  if not head then return false end
  return string.sub(head, 1, string.find(head, '\0', 1, true) - 1) == eid
end

-- True when each of n parks (5 ARGV each from p: consumer, key, sequence, header or '',
-- item) opens a sequence not open, or joins one open, counting the parks before it.
local function parks_fit(prefix, p, n)
  local opened = {}
  for i = 0, n - 1 do
    local b = p + 5 * i
    local ck = ARGV[b] .. '\0' .. ARGV[b + 1]
    local cur = opened[ck]
    if cur == nil then cur = redis.call('HGET', prefix .. ':dlq:open:' .. ARGV[b], ARGV[b + 1]) end
    if ARGV[b + 3] ~= '' then
      if cur then return false end
      opened[ck] = ARGV[b + 2]
    else
      if not cur then return false end
      opened[ck] = cur
    end
  end
  return true
end

local function write_parks(prefix, p, n)
  for i = 0, n - 1 do
    local b = p + 5 * i
    local open, seq = prefix .. ':dlq:open:' .. ARGV[b], ARGV[b + 2]
    if ARGV[b + 3] ~= '' then
      local h = cjson.decode(ARGV[b + 3])
      redis.call('HSET', prefix .. ':dlq:seq:' .. seq, 'id', h.id, 'service', h.service,
        'consumer', h.consumer, 'key', h.key, 'error', h.error, 'message', h.message,
        'traceback', h.traceback, 'attempts', h.attempts, 'first_failed', h.first_failed,
        'last_failed', h.last_failed)
      redis.call('HSET', open, ARGV[b + 1], seq)
      redis.call('SADD', prefix .. ':dlq:ids', seq)
    else
      seq = redis.call('HGET', open, ARGV[b + 1])
    end
    redis.call('RPUSH', prefix .. ':dlq:ev:' .. seq, ARGV[b + 4])
  end
end

-- Deletes a sequence: its events, its header, and its place among the open ones.
local function forget(prefix, seq)
  local seqk = prefix .. ':dlq:seq:' .. seq
  local who = redis.call('HMGET', seqk, 'consumer', 'key')
  redis.call('DEL', seqk, prefix .. ':dlq:ev:' .. seq)
  if who[1] then redis.call('HDEL', prefix .. ':dlq:open:' .. who[1], who[2]) end
  redis.call('SREM', prefix .. ':dlq:ids', seq)
end
