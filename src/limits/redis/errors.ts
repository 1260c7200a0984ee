import { LimitStoreFaultError } from '../store.js';

/** A command that got no answer: Redis is down, unreachable or stuck. `sent`: it may have run in Redis all the same. */
export class RedisOutage extends Error {
  override name = 'RedisOutage';

  constructor(
    message: string,
    readonly sent: boolean,
  ) {
    super(message);
  }
}

/** Error replies that mean "not now" (loading, failing over, busy with a script) rather than "never". */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|NOREPLICAS)\b/;

export function isErrorReply(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

/** An answer from Redis, even an error: Redis is up. */
export function isAnswer(err: unknown): boolean {
  return isErrorReply(err) && !UNAVAILABLE_REPLY.test(err.message);
}

/** What a failed command means for the ledger: a fault when Redis answered with an error, else an outage. */
export function classifyFailure(err: unknown, sent: boolean): LimitStoreFaultError | RedisOutage {
  if (err instanceof LimitStoreFaultError || err instanceof RedisOutage) return err;
  const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  if (isAnswer(err)) return new LimitStoreFaultError(`Redis refused a spend-ledger command: ${message}`, { cause: err });
  return new RedisOutage(message, sent);
}
