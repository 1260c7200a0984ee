import { isAnswer } from './errors.js';

export interface DeadlineOptions {
  /** How long Redis may answer nothing at all while a command waits, before that command counts as stuck (ms). */
  quietMs: number;
  /** The longest one command may wait, however busy Redis is answering others (ms). */
  hardMs: number;
}

export class RedisTimeoutError extends Error {
  override name = 'RedisTimeoutError';
}

/**
 * The store's own command deadline. It measures Redis, not the app: a command counts as stuck only when Redis answered
 * nothing (on any command) for `quietMs` while this process was watching. Time the process could not watch does not
 * count: when a timer fires late (the app kept the event loop busy, or the machine stalled the process, and Redis
 * along with it), Redis gets a full `quietMs` again from then on. And the verdict waits for the end of the loop's turn
 * (setImmediate runs after the poll phase has read the sockets), so a reply already there is read before it is judged.
 */
export class ReplyDeadline {
  private lastAnswerAt = Number.NEGATIVE_INFINITY;
  /** A timer later than this has not let the process watch Redis in time (ms): a fraction of the timeout, and more than a busy loop's jitter. */
  private readonly stallMs: number;

  constructor(private readonly options: DeadlineOptions) {
    this.stallMs = Math.max(options.quietMs / 4, 10);
  }

  /** Counts the reply, when it comes, as progress for every command waiting on Redis. */
  progress<T>(reply: Promise<T>): Promise<T> {
    reply.then(this.noteAnswer, (err: unknown) => {
      if (isAnswer(err)) this.noteAnswer();
    });
    return reply;
  }

  /** Settles as the reply does, unless Redis stays quiet for `quietMs` while watched, or the wait reaches `hardMs`. */
  watch<T>(reply: Promise<T>): Promise<T> {
    const sentAt = performance.now();
    const { quietMs, hardMs } = this.options;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout;
      let watchedSince = sentAt;
      let verdictDueAt = sentAt + quietMs;
      reply.then(
        (value) => {
          settled = true;
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          settled = true;
          clearTimeout(timer);
          reject(err);
        },
      );
      const verdict = (): void => {
        if (settled) return;
        const now = performance.now();
        if (now - verdictDueAt > this.stallMs) watchedSince = now;
        const waited = now - sentAt;
        const quiet = now - Math.max(watchedSince, this.lastAnswerAt);
        if (quiet < quietMs && waited < hardMs) {
          const wait = Math.min(quietMs - quiet, hardMs - waited);
          verdictDueAt = now + wait;
          timer = setTimeout(check, wait);
          return;
        }
        settled = true;
        reject(new RedisTimeoutError(quiet >= quietMs ? `Redis answered nothing for ${Math.round(quiet)} ms` : `no reply from Redis within ${hardMs} ms`));
      };
      const check = (): void => void setImmediate(verdict);
      timer = setTimeout(check, quietMs);
    });
  }

  private readonly noteAnswer = (): void => {
    this.lastAnswerAt = performance.now();
  };
}
