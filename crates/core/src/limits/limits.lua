-- The shared limits, one script for every decision so that each is one round trip and one
-- atomic step, on this server's clock (TIME), never the replicas'. ARGV[1] names the
-- operation; KEYS and the rest of ARGV are the operation's (see each function).
--
-- A bucket (requests or tokens per minute) holds at most its limit, refills at its limit per
-- minute, and is a hash {v, t}. A spend is a float per key and period; the period (UTC day or
-- month) is this server's, so every replica rolls over at the same instant.

local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A bucket's level now.
local function level(key, limit)
  local s = redis.call('HMGET', key, 'v', 't')
  local v = tonumber(s[1]) or limit
  local at = tonumber(s[2]) or now
  if now > at then
    v = math.min(limit, v + (now - at) * limit / 60000)
  end
  return v
end

local function store(key, limit, v)
  redis.call('HSET', key, 'v', tostring(v), 't', now)
  -- A full bucket is the same as no bucket: let it go once it would be full.
  redis.call('PEXPIRE', key, 60000 + math.ceil(math.max(0, limit - v) * 60000 / limit))
end

-- Days since 1970-01-01 of a civil date, and back (proleptic Gregorian).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m > 2) and (m - 3) or (m + 9)
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = (mp < 10) and (mp + 3) or (mp - 9)
  if m <= 2 then y = y + 1 end
  return y, m
end

-- The current period's name and the millisecond it ends at.
local function period(kind)
  local day = math.floor(now / 86400000)
  if kind == 'day' then
    return 'd' .. day, (day + 1) * 86400000
  end
  local y, m = civil_from_days(day)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return string.format('m%04d-%02d', y, m), days_from_civil(ny, nm, 1) * 86400000
end

-- admit: one request, against every limit that applies, all or nothing.
-- KEYS: the key's tokens bucket, the gateway's tokens bucket, the key's requests bucket, the
--   gateway's requests bucket, the key's spend (without its period).
-- ARGV[2] tokens asked; ARGV[3..6] key tokens/min, gateway tokens/min, key requests/min,
--   gateway requests/min (0: no such limit); ARGV[7] budget in USD (0: none); ARGV[8] period.
-- Returns {code, retry_ms} on a refusal (1 budget spent, 2 key tokens, 3 gateway tokens,
--   4 key requests, 5 gateway requests), else {0, 0, then limit and remaining of each
--   bucket in KEYS order, then the tokens reserved from the key's and the gateway's}.
local function admit()
  local asked = tonumber(ARGV[2])
  local budget = tonumber(ARGV[7])
  if budget > 0 then
    local name, ends = period(ARGV[8])
    local spent = tonumber(redis.call('GET', KEYS[5] .. ':' .. name) or '0')
    if spent >= budget then
      return {1, ends - now}
    end
  end

  local limits = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
  local wants = {asked, asked, 1, 1}
  local levels = {}
  for i = 1, 4 do
    local limit = limits[i]
    if limit > 0 then
      local want = math.min(wants[i], limit)
      wants[i] = want
      local v = level(KEYS[i], limit)
      if v < want then
        return {i + 1, math.ceil((want - v) * 60000 / limit)}
      end
      levels[i] = v
    end
  end

  local out = {0, 0}
  for i = 1, 4 do
    local limit = limits[i]
    if limit > 0 then
      local left = levels[i] - wants[i]
      store(KEYS[i], limit, left)
      out[#out + 1] = limit
      out[#out + 1] = math.max(0, math.floor(left))
    else
      out[#out + 1] = 0
      out[#out + 1] = 0
    end
  end
  out[#out + 1] = (limits[1] > 0) and wants[1] or 0
  out[#out + 1] = (limits[2] > 0) and wants[2] or 0
  return out
end

-- settle: an admitted request's usage, once. The unused part of each token reservation goes
-- back (usage beyond it is owed), and the cost is added to the key's spend. The ticket makes
-- a repeated settlement (a write retried after a timeout) count nothing.
-- KEYS: the key's tokens bucket, the gateway's tokens bucket, the key's spend (without its
--   period), this settlement's ticket.
-- ARGV[2..3] tokens reserved from the key's and the gateway's; ARGV[4] tokens used;
--   ARGV[5..6] key and gateway tokens/min; ARGV[7] cost in USD; ARGV[8] budget (0: none);
--   ARGV[9] period.
-- Returns what is left of the budget in the period, as a string, or "" without a budget.
local function settle()
  if redis.call('SET', KEYS[4], '1', 'NX', 'PX', 3600000) == false then
    return ''
  end

  local used = tonumber(ARGV[4])

  local function give_back(key, limit, reserved)
    if limit <= 0 then return end
    store(key, limit, math.min(limit, level(key, limit) + reserved - used))
  end

  give_back(KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[2]))
  give_back(KEYS[2], tonumber(ARGV[6]), tonumber(ARGV[3]))

  local budget = tonumber(ARGV[8])
  if budget <= 0 then
    return ''
  end

  local name, ends = period(ARGV[9])
  local key = KEYS[3] .. ':' .. name
  local cost = tonumber(ARGV[7])
  local spent
  if cost > 0 then
    spent = tonumber(redis.call('INCRBYFLOAT', key, ARGV[7]))
  else
    spent = tonumber(redis.call('GET', key) or '0')
  end
  -- Kept a day past its period, for whoever reads it late.
  redis.call('PEXPIREAT', key, ends + 86400000)
  return tostring(math.max(0, budget - spent))
end

-- budget: what is left of a key's budget in the period.
-- KEYS: the key's spend (without its period). ARGV[2] budget in USD; ARGV[3] period.
local function budget_left()
  local name = period(ARGV[3])
  local spent = tonumber(redis.call('GET', KEYS[1] .. ':' .. name) or '0')
  return tostring(math.max(0, tonumber(ARGV[2]) - spent))
end

if op == 'admit' then
  return admit()
elseif op == 'settle' then
  return settle()
elseif op == 'budget' then
  return budget_left()
end
return redis.error_reply('unknown operation ' .. tostring(op))
