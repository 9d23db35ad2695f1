-- Counts a try of an mfa_token (KEYS[1]), if it still exists: -1 if not,
-- since a plain HINCRBY would recreate it without its expiry.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
