-- Rotate a session's resume token, atomically: only if the session still
-- exists and still holds the token hash the caller verified, so two
-- resumes racing with one token cannot both succeed.
--
-- KEYS[1] session hash, KEYS[2] session rooms set
-- ARGV[1] verified token hash, ARGV[2] new token hash, ARGV[3] ttl (ms)
-- Returns 1 on success, 0 if the session changed or vanished.
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'token', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
