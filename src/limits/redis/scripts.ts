import { createHash } from 'node:crypto';

/**
 * The ledger's operations, each one Lua script so that Redis runs it atomically. Money is integer nano-dollars. A
 * window key (a hash: spent, reserved, revenue) expires by itself some time after its window ends: nothing ever needs resetting.
 * Every script checks all of its arguments and the type of every key it touches before its first write: Redis does
 * not roll a script back, so a script that failed halfway would leave half an operation behind.
 */
export interface LedgerScript {
  source: string;
  sha: string;
}

function ledgerScript(body: string): LedgerScript {
  const source = `${CHECKS}\n${body}`;
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** Amounts travel as decimal strings, checked here to be integers that a Lua number (a double) holds exactly. */
const CHECKS = `
local function fail(message)
  error({err = 'ERR ' .. message})
end
local function nano(value, what)
  if type(value) ~= 'string' or #value > 16 or not string.match(value, '^%d+$') or tonumber(value) > 9007199254740991 then
    fail(what .. ' must be a non-negative integer below 2^53')
  end
  return tonumber(value)
end
local function name(value, what)
  if type(value) ~= 'string' or not string.match(value, '^[%w_:%-|%%.]+$') then fail(what .. ' is not a valid name') end
  return value
end
local function ofType(key, expected)
  local actual = redis.call('TYPE', key)['ok']
  if actual ~= 'none' and actual ~= expected then
    error({err = 'WRONGTYPE a spend-ledger key holds the wrong kind of value'})
  end
end
local function stored(key, field)
  local value = redis.call('HGET', key, field)
  if not value then return 0 end
  if #value > 17 or not string.match(value, '^%-?%d+$') then fail('a spend-ledger field does not hold an integer') end
  return tonumber(value)
end
local function integer(value)
  return string.format('%d', value)
end
`;

/**
 * KEYS: limits hash, reservation hash, settled marker, rates hash, in-flight sorted set, window hash x n.
 * ARGV: amount, mode (strict | lenient), lease ms, model ('' when the request names none), input tokens (for a
 * tokens-per-minute limit), the version of the tenant's scoped budgets the caller knows, then for each window: budget
 * name (the frequency, or `<frequency>|<scope>` for a feature's or model's budget), window name, expiry (epoch ms),
 * default limit ('-' for none: the Meter's hard defaultLimit, which applies when the tenant has no limit of its own).
 * In order: the tenant's model policy (the limits hash's `models` field: one id, or prefix ending in '*', a line), its
 * rate limits (fields `rate:rpm`, `rate:tpm`, `rate:concurrent`: a sliding-window counter of this minute and the last,
 * by Redis' clock, and a sorted set of the calls in flight with their lease), then every window that has a hard limit;
 * then reserves in all of them or in none, counts the call in the rates, and records what it holds in each window in
 * the reservation (a lease). Answers {status, refused, retry after ms, minute, rate limit, rate flags, then limit (-1:
 * none), spent, reserved of each window}: status 1 admitted, 0 refused by the window `refused`, 2 already settled (a
 * release sent after a lost reply got there first), 3 the model is not allowed, 4 refused by rate limit `refused` (1
 * requests, 2 tokens, 3 concurrent), 5 the caller's version of the scoped budgets is not the one in
 * the limits hash (`scopes:v`): nothing was checked or written, the caller reads `scopes` again and asks anew. Rate flags: 1 counted in the minute's rates, 2 holds a place among the concurrent.
 */
export const RESERVE = ledgerScript(`
local amount = nano(ARGV[1], 'amount')
local mode = ARGV[2]
if mode ~= 'strict' and mode ~= 'lenient' then fail('mode must be strict or lenient') end
local lease = nano(ARGV[3], 'lease')
local model = ARGV[4]
local tokens = nano(ARGV[5], 'tokens')
local version = ARGV[6]
local n = #KEYS - 5
if n < 1 or #ARGV ~= 6 + 4 * n then fail('expected a budget, a name, an expiry and a default limit for each window key') end
ofType(KEYS[1], 'hash')
ofType(KEYS[2], 'hash')
ofType(KEYS[3], 'string')
ofType(KEYS[4], 'hash')
ofType(KEYS[5], 'zset')
local own = false
for _, f in ipairs({'per_day', 'per_month'}) do
  if redis.call('HEXISTS', KEYS[1], f) == 1 or redis.call('HEXISTS', KEYS[1], 'soft:' .. f) == 1 then own = true end
end
local limits, spent, reserved = {}, {}, {}
for i = 1, n do
  local w = 6 + 4 * (i - 1)
  name(ARGV[w + 1], 'budget')
  name(ARGV[w + 2], 'window')
  nano(ARGV[w + 3], 'window expiry')
  local default = ARGV[w + 4] == '-' and -1 or nano(ARGV[w + 4], 'default limit')
  ofType(KEYS[5 + i], 'hash')
  local limit = redis.call('HGET', KEYS[1], ARGV[w + 1])
  if limit then limits[i] = nano(limit, 'a stored limit') elseif own then limits[i] = -1 else limits[i] = default end
  spent[i] = stored(KEYS[5 + i], 'spent')
  reserved[i] = stored(KEYS[5 + i], 'reserved')
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local minute = math.floor(now / 60000)
local function answer(status, refused, retry, rateLimit, flags)
  local out = {status, refused, retry, minute, rateLimit, flags}
  for i = 1, n do
    out[#out + 1] = limits[i]
    out[#out + 1] = spent[i]
    out[#out + 1] = reserved[i]
  end
  return out
end
if redis.call('EXISTS', KEYS[3]) == 1 then return answer(2, 0, 0, 0, 0) end
if redis.call('EXISTS', KEYS[2]) == 1 then return answer(1, 0, 0, 0, 0) end
if (redis.call('HGET', KEYS[1], 'scopes:v') or '0') ~= version then return answer(5, 0, 0, 0, 0) end
local allowed = redis.call('HGET', KEYS[1], 'models')
if allowed then
  local ok = false
  for entry in string.gmatch(allowed, '[^\\n]+') do
    if string.sub(entry, -1) == '*' then
      ok = ok or (model ~= '' and string.sub(model, 1, #entry - 1) == string.sub(entry, 1, -2))
    else
      ok = ok or (model ~= '' and model == entry)
    end
  end
  if not ok then return answer(3, 0, 0, 0, 0) end
end
local rpm = redis.call('HGET', KEYS[1], 'rate:rpm')
local tpm = redis.call('HGET', KEYS[1], 'rate:tpm')
local concurrent = redis.call('HGET', KEYS[1], 'rate:concurrent')
rpm = rpm and nano(rpm, 'a stored rate limit')
tpm = tpm and nano(tpm, 'a stored rate limit')
concurrent = concurrent and nano(concurrent, 'a stored rate limit')
local r0, r1, t0, t1 = 0, 0, 0, 0
if rpm or tpm then
  local at = stored(KEYS[4], 'm')
  if at == minute then
    r0, r1, t0, t1 = stored(KEYS[4], 'r0'), stored(KEYS[4], 'r1'), stored(KEYS[4], 't0'), stored(KEYS[4], 't1')
  elseif at == minute - 1 then
    r0, t0 = stored(KEYS[4], 'r1'), stored(KEYS[4], 't1')
  end
end
local elapsed = now % 60000
local function sliding(previous, current)
  return previous * ((60000 - elapsed) / 60000) + current
end
-- The same estimate as the in-process limiter's waitFor (src/limits/controls/rate-limits.ts).
local function waitFor(previous, current, add, limit)
  local room = limit - current - add
  if room >= 0 and previous > 0 then return math.max(1, math.ceil(60000 * (1 - room / previous) - elapsed)) end
  if add > limit then return 120000 - elapsed end
  return 60000 - elapsed
end
if concurrent then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) + 1 > concurrent then return answer(4, 3, 1000, concurrent, 0) end
end
if rpm and sliding(r0, r1) + 1 > rpm then return answer(4, 1, waitFor(r0, r1, 1, rpm), rpm, 0) end
if tpm and sliding(t0, t1) + tokens > tpm then return answer(4, 2, waitFor(t0, t1, tokens, tpm), tpm, 0) end
for i = 1, n do
  if limits[i] >= 0 then
    local used = spent[i] + reserved[i]
    local fits = (mode == 'strict' and used + amount <= limits[i]) or (mode == 'lenient' and used < limits[i])
    if not fits then return answer(0, i, 0, 0, 0) end
  end
end
local held = false
for i = 1, n do
  if limits[i] >= 0 then
    local w = 6 + 4 * (i - 1)
    reserved[i] = redis.call('HINCRBY', KEYS[5 + i], 'reserved', ARGV[1])
    redis.call('PEXPIREAT', KEYS[5 + i], ARGV[w + 3])
    redis.call('HSET', KEYS[2], ARGV[w + 2], ARGV[1])
    held = true
  end
end
if held then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
local flags = 0
if rpm or tpm then
  redis.call('HSET', KEYS[4], 'm', minute, 'r0', r0, 'r1', r1 + 1, 't0', t0, 't1', t1 + tokens)
  redis.call('PEXPIRE', KEYS[4], 120000)
  flags = 1
end
if concurrent then
  redis.call('ZADD', KEYS[5], now + lease, string.sub(KEYS[2], -36))
  redis.call('PEXPIRE', KEYS[5], lease)
  flags = flags + 2
end
return answer(1, 0, 0, 0, flags)
`);

/**
 * KEYS: rates hash, in-flight sorted set.
 * ARGV: reservation id, the minute its tokens were counted in, that estimate, the call's real token count.
 * Gives the call's place among the concurrent ones back, and puts its real token count in place of the estimate when
 * that minute is still in the window.
 */
export const RATE_SETTLE = ledgerScript(`
if #KEYS ~= 2 or #ARGV ~= 4 then fail('expected 2 keys and 4 arguments') end
local counted = nano(ARGV[2], 'minute')
local estimate = nano(ARGV[3], 'estimate')
local actual = nano(ARGV[4], 'actual tokens')
ofType(KEYS[1], 'hash')
ofType(KEYS[2], 'zset')
redis.call('ZREM', KEYS[2], ARGV[1])
local at = stored(KEYS[1], 'm')
local field = (counted == at and 't1') or (counted == at - 1 and 't0') or nil
if field then
  local value = stored(KEYS[1], field) + actual - estimate
  redis.call('HSET', KEYS[1], field, integer(math.max(0, value)))
end
return 1
`);

/**
 * KEYS: settled marker, reservation hash, window hash x n.
 * ARGV: actual amount, marker ttl ms, now (epoch ms), then for each window: window name, expiry (epoch ms).
 * Idempotent on the marker (the reservation id): a second settle changes nothing. In each window that has not ended,
 * releases what the reservation holds there (nothing when its lease is gone or it never got there) and adds the actual
 * amount to spent. Answers {1, spent, reserved of each window}, or {0} when it was settled already.
 */
export const SETTLE = ledgerScript(`
nano(ARGV[1], 'actual amount')
nano(ARGV[2], 'marker ttl')
local now = nano(ARGV[3], 'now')
local n = #KEYS - 2
if n < 1 or #ARGV ~= 3 + 2 * n then fail('expected a name and an expiry for each window key') end
ofType(KEYS[1], 'string')
ofType(KEYS[2], 'hash')
local held, live = {}, {}
for i = 1, n do
  name(ARGV[2 * i + 2], 'window')
  live[i] = nano(ARGV[2 * i + 3], 'window expiry') > now
  ofType(KEYS[2 + i], 'hash')
  stored(KEYS[2 + i], 'spent')
  stored(KEYS[2 + i], 'reserved')
  held[i] = stored(KEYS[2], ARGV[2 * i + 2])
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local out = {1}
for i = 1, n do
  local key = KEYS[2 + i]
  if live[i] then
    if held[i] ~= 0 and redis.call('HINCRBY', key, 'reserved', integer(-held[i])) < 0 then redis.call('HSET', key, 'reserved', '0') end
    redis.call('HINCRBY', key, 'spent', ARGV[1])
    redis.call('PEXPIREAT', key, ARGV[2 * i + 3])
  end
  out[#out + 1] = stored(key, 'spent')
  out[#out + 1] = stored(key, 'reserved')
end
redis.call('DEL', KEYS[2])
return out
`);

/**
 * KEYS: replay marker, window hash.
 * ARGV: spent, release, marker ttl ms, now (epoch ms), window expiry (epoch ms), revenue.
 * Writes one journalled aggregate of settlements and bookings: adds its spend and revenue, and releases what its
 * reservations held (never below zero: a restarted Redis may have lost the holds). Idempotent on the marker (the
 * aggregate's id): a replay whose reply was lost is sent again under the same id. Answers {1, spent, reserved}, or {0}
 * when it was written already.
 */
export const REPLAY = ledgerScript(`
if #KEYS ~= 2 or #ARGV ~= 6 then fail('expected 2 keys and 6 arguments') end
nano(ARGV[1], 'spent')
local release = nano(ARGV[2], 'release')
nano(ARGV[3], 'marker ttl')
local live = nano(ARGV[5], 'window expiry') > nano(ARGV[4], 'now')
local revenue = nano(ARGV[6], 'revenue')
ofType(KEYS[1], 'string')
ofType(KEYS[2], 'hash')
stored(KEYS[2], 'spent')
stored(KEYS[2], 'reserved')
stored(KEYS[2], 'revenue')
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
if live then
  if release > 0 and redis.call('HINCRBY', KEYS[2], 'reserved', '-' .. ARGV[2]) < 0 then redis.call('HSET', KEYS[2], 'reserved', '0') end
  redis.call('HINCRBY', KEYS[2], 'spent', ARGV[1])
  if revenue > 0 then redis.call('HINCRBY', KEYS[2], 'revenue', ARGV[6]) end
  redis.call('PEXPIREAT', KEYS[2], ARGV[5])
end
return {1, stored(KEYS[2], 'spent'), stored(KEYS[2], 'reserved')}
`);

/**
 * KEYS: limits hash[, window hash].
 * ARGV: budget name (the frequency, or `<frequency>|<scope>`), limit, mode (hard | soft), thresholds ('' for the
 * Meter's; else comma-separated fractions)[, seeded spend, window expiry (epoch ms)].
 * Sets a limit (a hard one in the field named by the budget, which admission reads; a soft one in `soft:<budget>`,
 * which it never reads), its thresholds, and, with a seed, the window's settled spend, in one step. A scoped budget new
 * to the tenant joins its list (`scopes`, one name a line) and moves the list's version (`scopes:v`) on.
 */
export const SET_LIMIT = ledgerScript(`
local seeded = #KEYS == 2
if not ((#KEYS == 1 and #ARGV == 4) or (seeded and #ARGV == 6)) then fail('expected a limit, or a limit and a seed') end
local budget = name(ARGV[1], 'budget')
nano(ARGV[2], 'limit')
if ARGV[3] ~= 'hard' and ARGV[3] ~= 'soft' then fail('mode must be hard or soft') end
if ARGV[4] ~= '' and not string.match(ARGV[4], '^[%d.,]+$') then fail('thresholds must be comma-separated fractions') end
ofType(KEYS[1], 'hash')
if seeded then
  nano(ARGV[5], 'seeded spend')
  nano(ARGV[6], 'window expiry')
  ofType(KEYS[2], 'hash')
end
local field, other = budget, 'soft:' .. budget
if ARGV[3] == 'soft' then field, other = other, field end
redis.call('HSET', KEYS[1], field, ARGV[2])
redis.call('HDEL', KEYS[1], other)
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], 'thresholds:' .. budget) else redis.call('HSET', KEYS[1], 'thresholds:' .. budget, ARGV[4]) end
if string.find(budget, '|', 1, true) then
  local list = redis.call('HGET', KEYS[1], 'scopes') or ''
  local listed = false
  for entry in string.gmatch(list, '[^\\n]+') do listed = listed or entry == budget end
  if not listed then
    redis.call('HSET', KEYS[1], 'scopes', list == '' and budget or list .. '\\n' .. budget)
    redis.call('HINCRBY', KEYS[1], 'scopes:v', 1)
  end
end
if seeded then
  redis.call('HSET', KEYS[2], 'spent', ARGV[5])
  redis.call('PEXPIREAT', KEYS[2], ARGV[6])
end
return 1
`);

/**
 * KEYS: limits hash.
 * ARGV: budget name (the frequency, or `<frequency>|<scope>`).
 * Removes the budget's limit, hard or soft, and its thresholds; a scoped one leaves the tenant's list, whose version
 * moves on.
 */
export const REMOVE_LIMIT = ledgerScript(`
if #KEYS ~= 1 or #ARGV ~= 1 then fail('expected a limits key and a budget') end
local budget = name(ARGV[1], 'budget')
ofType(KEYS[1], 'hash')
redis.call('HDEL', KEYS[1], budget, 'soft:' .. budget, 'thresholds:' .. budget)
if string.find(budget, '|', 1, true) then
  local kept, removed = {}, false
  for entry in string.gmatch(redis.call('HGET', KEYS[1], 'scopes') or '', '[^\\n]+') do
    if entry == budget then removed = true else kept[#kept + 1] = entry end
  end
  if removed then
    if #kept == 0 then redis.call('HDEL', KEYS[1], 'scopes') else redis.call('HSET', KEYS[1], 'scopes', table.concat(kept, '\\n')) end
    redis.call('HINCRBY', KEYS[1], 'scopes:v', 1)
  end
end
return 1
`);
