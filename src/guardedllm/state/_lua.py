"""The Lua scripts behind the Redis backend: each ``StateBackend`` operation is one script, run
atomically by the server, so that a read-then-write (a bucket take, a counter over its limit, a
compare-and-set) never interleaves with another process's.

Each script is ``MemoryBackend``'s method of the same name, line for line where it can be; the
rules it keeps are ``memory.py``'s:

- Time is the caller's ``now`` (an argument), never the server's: guards decide on one clock
  (``RedisBackend.clock()`` with a shared backend; virtual time in tests). Stored expiry times
  are checked against ``now``, as the memory backend does. The Redis TTL on every key, set
  relative to ``now`` (until the key reads as absent, plus ``STATE_EXPIRY_SLACK_S`` for callers
  whose clocks lag), only lets the server drop what no caller can see any more; so on virtual
  time, where seconds pass in microseconds, the server never drops what a test still reads.
- A bucket's refill time never moves backwards (see ``memory.py``).
- Every key a script writes gets a TTL; none lives forever (at most ``STATE_MAX_TTL_S``).
- Numbers cross as text both ways: Python sends ``repr()``, which parses back to the same
  double, and the scripts write and return ``%.17g`` (Lua's ``tostring`` keeps 14 digits).

Keys hold hashes: a bucket ``level``, ``at``; a counter ``total``, ``expires_at``; a value
``value`` and ``expires_at`` (absent: no end of its own); a window ``width``, ``newest``,
``expires_at``, ``totals`` and one ``s:<index>`` field per slice (amounts joined by spaces).
"""

from __future__ import annotations

from guardedllm import defaults

__all__ = ["SCRIPTS"]

_COMMON = """
local function fmt(x)
  return string.format('%.17g', x)
end

-- Keep KEY until SECONDS from now, when it reads as absent by the writer's clock, plus a slack
-- for callers whose clocks lag the writer's; at most the longest TTL (which also catches an
-- infinite or NaN span), at least a millisecond (a PEXPIRE of 0 deletes at once).
local function expire_in(key, seconds)
  local ms = math.ceil((seconds + @SLACK_S@) * 1000)
  if not (ms <= @MAX_TTL_MS@) then ms = @MAX_TTL_MS@ end
  if ms < 1 then ms = 1 end
  redis.call('PEXPIRE', key, ms)
end
"""

_BUCKETS = """
-- The level refilled up to NOW (a new bucket is full) and the time it is refilled to, which
-- never moves back: a caller whose clock lags refills nothing instead of an interval twice.
local function refilled(key, capacity, rate, now)
  local stored = redis.call('HMGET', key, 'level', 'at')
  local level, at = capacity, now
  if stored[1] then
    level, at = tonumber(stored[1]), tonumber(stored[2])
  end
  if now > at then
    return math.min(capacity, level + (now - at) * rate), now
  end
  return level, at
end

-- The key expires once the bucket is full again, when it reads as a new bucket would (a
-- bucket that never refills keeps the longest TTL).
local function store_bucket(key, level, at, capacity, rate, now)
  redis.call('HSET', key, 'level', fmt(level), 'at', fmt(at))
  local full_in = 0
  if level < capacity then
    full_in = (capacity - level) / rate
  end
  expire_in(key, (at - now) + full_in)
end

local capacity, rate, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
"""

_BUCKET_TAKE = """
local amount = tonumber(ARGV[1])
local level, at = refilled(KEYS[1], capacity, rate, now)
if ARGV[5] == '1' or level >= amount then
  level = level - amount
  store_bucket(KEYS[1], level, at, capacity, rate, now)
  return {1, fmt(level), '0'}
end
store_bucket(KEYS[1], level, at, capacity, rate, now)
local wait = math.huge
if rate > 0 then
  wait = (amount - level) / rate
end
return {0, fmt(level), fmt(wait)}
"""

_BUCKET_PUT = """
local level, at = refilled(KEYS[1], capacity, rate, now)
level = math.min(capacity, level + tonumber(ARGV[1]))
store_bucket(KEYS[1], level, at, capacity, rate, now)
return fmt(level)
"""

_BUCKET_SET = """
local _, at = refilled(KEYS[1], capacity, rate, now)
store_bucket(KEYS[1], math.min(capacity, tonumber(ARGV[1])), at, capacity, rate, now)
return 1
"""

_COUNTERS = """
-- The total at NOW: 0 once its expiry has passed by the caller's clock, whether or not the
-- server has dropped the key yet.
local function counter_total(key, now)
  local stored = redis.call('HMGET', key, 'total', 'expires_at')
  if stored[1] and tonumber(stored[2]) >= now then
    return tonumber(stored[1])
  end
  return 0
end
"""

_COUNTER_ADD = """
local amount, expires_at, now = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local total = counter_total(KEYS[1], now)
local new_total = total + amount
if ARGV[2] ~= '' and amount > 0 and new_total > tonumber(ARGV[2]) then
  return {0, fmt(total)}
end
redis.call('HSET', KEYS[1], 'total', fmt(new_total), 'expires_at', ARGV[3])
expire_in(KEYS[1], expires_at - now)
return {1, fmt(new_total)}
"""

_COUNTERS_GET = """
local now = tonumber(ARGV[1])
local totals = {}
for i, key in ipairs(KEYS) do
  totals[i] = fmt(counter_total(key, now))
end
return totals
"""

_VALUES = """
-- The value, or false when absent or expired by the caller's clock.
local function current_value(key, now)
  local stored = redis.call('HMGET', key, 'value', 'expires_at')
  if stored[1] and (not stored[2] or tonumber(stored[2]) >= now) then
    return stored[1]
  end
  return false
end
"""

_VALUE_GET = """
return current_value(KEYS[1], tonumber(ARGV[1]))
"""

# ARGV: now, whether a value is expected ('1'/'0'), the expected value, whether a value is set
# ('1'/'0': a delete), the value, its expiry ('' for none of its own).
_VALUE_CAS = """
local now = tonumber(ARGV[1])
local current = current_value(KEYS[1], now)
if ARGV[2] == '1' then
  if current ~= ARGV[3] then
    return 0
  end
elseif current then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[4] == '0' then
  return 1
end
if ARGV[6] == '' then
  redis.call('HSET', KEYS[1], 'value', ARGV[5])
  expire_in(KEYS[1], math.huge)
else
  redis.call('HSET', KEYS[1], 'value', ARGV[5], 'expires_at', ARGV[6])
  expire_in(KEYS[1], tonumber(ARGV[6]) - now)
end
return 1
"""

_WINDOWS = """
local function numbers(text)
  local list = {}
  for word in string.gmatch(text, '%S+') do
    list[#list + 1] = tonumber(word)
  end
  return list
end

local function joined(list)
  local words = {}
  for i, x in ipairs(list) do
    words[i] = fmt(x)
  end
  return table.concat(words, ' ')
end

-- {width, newest, expires_at, totals, slices = {[index] = {field, amounts}}}, or nil.
local function load_window(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then
    return nil
  end
  local window = {slices = {}}
  for i = 1, #flat, 2 do
    local field, text = flat[i], flat[i + 1]
    if string.sub(field, 1, 2) == 's:' then
      window.slices[tonumber(string.sub(field, 3))] = {field = field, amounts = numbers(text)}
    elseif field == 'totals' then
      window.totals = numbers(text)
    else
      window[field] = tonumber(text)
    end
  end
  return window
end

-- The totals over the SLICES slices ending with LAST, formatted.
local function window_sum(window, width, last, slices)
  local totals = window.totals
  if last ~= window.newest then
    totals = {}
    for m = 1, width do
      totals[m] = 0
    end
    for index, slice in pairs(window.slices) do
      if last - slices < index and index <= last then
        for m = 1, width do
          totals[m] = totals[m] + slice.amounts[m]
        end
      end
    end
  end
  local out = {}
  for m = 1, width do
    out[m] = fmt(totals[m])
  end
  return out
end
"""

# ARGV: slice index, slices, expires_at, now, then one amount per metric.
_WINDOW_ADD = """
local index, slices = tonumber(ARGV[1]), tonumber(ARGV[2])
local expires_at, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local amounts = {}
for i = 5, #ARGV do
  amounts[#amounts + 1] = tonumber(ARGV[i])
end
local width = #amounts
local window = load_window(KEYS[1])
-- An expired window needs no reset: its slices slide out of the totals as it moves.
if window == nil or window.width ~= width then
  redis.call('DEL', KEYS[1])
  window = {width = width, newest = index, expires_at = 0, totals = {}, slices = {}}
  for m = 1, width do
    window.totals[m] = 0
  end
end
local dropped = {}
if index > window.newest then
  -- Slices leaving the last SLICES leave the totals; a slice is kept as long again, for a
  -- caller whose clock lags (it reads the window ending at its own slice).
  local leaving_from, leaving_to = window.newest - slices + 1, index - slices + 1
  for i, slice in pairs(window.slices) do
    if i < leaving_to then
      if i >= leaving_from then
        for m = 1, width do
          window.totals[m] = window.totals[m] - slice.amounts[m]
        end
      end
      if i <= index - 2 * slices then
        dropped[#dropped + 1] = slice.field
        window.slices[i] = nil
      end
    end
  end
  window.newest = index
end
local slice = window.slices[index]
if slice == nil then
  slice = {field = 's:' .. ARGV[1], amounts = {}}
  for m = 1, width do
    slice.amounts[m] = amounts[m]
  end
  window.slices[index] = slice
else
  for m = 1, width do
    slice.amounts[m] = slice.amounts[m] + amounts[m]
  end
end
if index > window.newest - slices then
  for m = 1, width do
    window.totals[m] = window.totals[m] + amounts[m]
  end
end
window.expires_at = math.max(window.expires_at, expires_at)
if #dropped > 0 then
  redis.call('HDEL', KEYS[1], unpack(dropped))
end
redis.call('HSET', KEYS[1], 'width', width, 'newest', fmt(window.newest),
  'expires_at', fmt(window.expires_at), 'totals', joined(window.totals),
  slice.field, joined(slice.amounts))
expire_in(KEYS[1], window.expires_at - now)
return window_sum(window, width, index, slices)
"""

# ARGV: width, slice index, slices, now.
_WINDOW_GET = """
local width, last, slices, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local window = load_window(KEYS[1])
if window == nil or window.expires_at < now or window.width ~= width then
  local zeros = {}
  for m = 1, width do
    zeros[m] = '0'
  end
  return zeros
end
return window_sum(window, width, last, slices)
"""


def _script(*parts: str) -> str:
    source = "".join(parts)
    source = source.replace("@MAX_TTL_MS@", str(round(defaults.STATE_MAX_TTL_S * 1000)))
    return source.replace("@SLACK_S@", repr(defaults.STATE_EXPIRY_SLACK_S))


# Operation name -> Lua source. The sync and async backends register these same texts.
SCRIPTS: dict[str, str] = {
    "bucket_take": _script(_COMMON, _BUCKETS, _BUCKET_TAKE),
    "bucket_put": _script(_COMMON, _BUCKETS, _BUCKET_PUT),
    "bucket_set": _script(_COMMON, _BUCKETS, _BUCKET_SET),
    "counter_add": _script(_COMMON, _COUNTERS, _COUNTER_ADD),
    "counters_get": _script(_COMMON, _COUNTERS, _COUNTERS_GET),
    "window_add": _script(_COMMON, _WINDOWS, _WINDOW_ADD),
    "window_get": _script(_COMMON, _WINDOWS, _WINDOW_GET),
    "value_get": _script(_COMMON, _VALUES, _VALUE_GET),
    "value_cas": _script(_COMMON, _VALUES, _VALUE_CAS),
}
