/**
 * The fleet ledger's two operations, each one Lua script so that Redis runs it atomically. Money is integer
 * nano-dollars. A window key (a hash: spent, reserved) expires by itself some time after its window ends: nothing ever
 * needs resetting.
 */

/**
 * KEYS: limits hash, window hash x n, reservation key.
 * ARGV: amount, strict (1/0), lease ms, n, frequency x n, window expiry (epoch ms) x n.
 * Checks every window that has a limit, then reserves in all of them or in none. Returns {0, window index, limit,
 * spent + reserved} when refused, else {1, reserved window index...} (no index: the tenant has no limit).
 */
export const RESERVE_SCRIPT = `
local amount = tonumber(ARGV[1])
local strict = ARGV[2] == '1'
local always = ARGV[2] == '2'
local n = tonumber(ARGV[4])
local limited = {}
for i = 1, n do
  local limit = redis.call('HGET', KEYS[1], ARGV[4 + i])
  if limit then
    limit = tonumber(limit)
    local spent = tonumber(redis.call('HGET', KEYS[1 + i], 'spent') or '0')
    local reserved = tonumber(redis.call('HGET', KEYS[1 + i], 'reserved') or '0')
    local used = spent + reserved
    local fits
    if always then fits = true elseif strict then fits = used + amount <= limit else fits = used < limit end
    if not fits then return {0, i, tostring(limit), tostring(spent), tostring(reserved)} end
    limited[#limited + 1] = i
  end
end
for _, i in ipairs(limited) do
  redis.call('HINCRBY', KEYS[1 + i], 'reserved', ARGV[1])
  redis.call('PEXPIREAT', KEYS[1 + i], ARGV[4 + n + i])
end
if #limited > 0 then redis.call('SET', KEYS[n + 2], amount, 'PX', ARGV[3]) end
local result = {1}
for _, i in ipairs(limited) do result[#result + 1] = i end
return result
`;

/**
 * KEYS: settled marker, reservation key, window hash x n.
 * ARGV: minus the reserved amount, actual amount, marker ttl ms, now (epoch ms), window expiry (epoch ms) x n.
 * Idempotent on the marker (the event id): a second settle changes nothing. Moves the reservation to spent in each
 * window that has not ended; a window that has ended no longer matters.
 */
export const SETTLE_SCRIPT = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
for i = 3, #KEYS do
  local expireAt = tonumber(ARGV[i + 2])
  if expireAt > tonumber(ARGV[4]) then
    redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[1])
    redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2])
    redis.call('PEXPIREAT', KEYS[i], expireAt)
  end
end
redis.call('DEL', KEYS[2])
return 1
`;
