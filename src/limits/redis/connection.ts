import { createRequire } from 'node:module';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { ConfigError } from '../../errors.js';
import { classifyFailure, isAnswer, isErrorReply, RedisOutage } from './errors.js';
import { ReplyDeadline, RedisTimeoutError } from './reply-deadline.js';
import type { LedgerScript } from './scripts.js';
import type { AppRedisClient } from './app-redis-client.js';

/** A single Redis or a Redis Cluster, through ioredis. */
export type RedisClient = Redis | Cluster;

export interface ConnectionOptions {
  /** How long a command may wait for a connection to become ready (ms). */
  connectTimeout: number;
  /** How long Redis may answer nothing while a command waits (ms). */
  commandTimeout: number;
  /** The longest one command may wait once sent (ms). */
  commandDeadline: number;
}

function loadIoredis(): new (url: string, options: RedisOptions) => Redis {
  try {
    const ioredis = createRequire(__filename)('ioredis') as { default?: unknown; Redis?: unknown };
    return (ioredis.Redis ?? ioredis.default ?? ioredis) as new (url: string, options: RedisOptions) => Redis;
  } catch {
    throw new ConfigError('limits.redis needs the ioredis package: npm install ioredis');
  }
}

/**
 * The ledger's way to Redis, on a connection of its own or on the app's client: every command waits for the connection
 * (up to `connectTimeout`), then runs under the store's own deadline (ioredis' `commandTimeout` is not used: it fires
 * when the app's event loop was busy, even though the reply had arrived). A failed command rejects with a
 * LimitStoreFaultError when Redis answered with an error, else with a RedisOutage.
 */
export class RedisConnection {
  readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly deadline: ReplyDeadline;
  private connecting: Promise<void> | undefined;

  /** `onLateAnswer`: Redis answered a command after its deadline had given up on it. */
  constructor(
    target: string | AppRedisClient,
    private readonly options: ConnectionOptions,
    private readonly onLateAnswer: () => void,
  ) {
    this.deadline = new ReplyDeadline({ quietMs: options.commandTimeout, hardMs: options.commandDeadline });
    if (typeof target !== 'string') {
      this.client = target as unknown as RedisClient;
      this.ownsClient = false;
      return;
    }
    const Client = loadIoredis();
    const client = new Client(target, {
      connectTimeout: options.connectTimeout,
      // A command in flight when the connection drops fails at once: the breaker and the journal take it from there.
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
    // The agent's own connection must never keep the process alive, and its errors are the breaker's business.
    client.on('error', () => undefined);
    client.on('connect', () => (client as unknown as { stream?: { unref?: () => void } }).stream?.unref?.());
    this.client = client;
    this.ownsClient = true;
  }

  /** Runs one of the ledger's scripts. `onLate` hears its reply if that comes after the deadline gave up. */
  script(script: LedgerScript, keys: string[], args: string[], onLate?: (reply: unknown) => void): Promise<unknown> {
    return this.run((client) => this.evalScript(client, script, keys, args), onLate);
  }

  async run<T>(command: (client: RedisClient) => Promise<T>, onLate?: (reply: T) => void): Promise<T> {
    if (!this.connections().every((c) => c.status === 'ready')) await this.connected();
    const reply = this.deadline.progress(command(this.client));
    try {
      return await this.deadline.watch(reply);
    } catch (err) {
      if (err instanceof RedisTimeoutError) this.hearLate(reply, onLate);
      throw classifyFailure(err, true);
    }
  }

  close(): void {
    if (this.ownsClient) this.client.disconnect();
  }

  private hearLate<T>(reply: Promise<T>, onLate: ((reply: T) => void) | undefined): void {
    reply.then(
      (value) => {
        onLate?.(value);
        this.onLateAnswer();
      },
      (err: unknown) => {
        if (isAnswer(err)) this.onLateAnswer();
      },
    );
  }

  private async evalScript(client: RedisClient, script: LedgerScript, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await this.deadline.progress(client.evalsha(script.sha, keys.length, ...keys, ...args));
    } catch (err) {
      if (!isErrorReply(err) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.eval(script.source, keys.length, ...keys, ...args);
    }
  }

  /** What a command may travel on: the client, and for a Cluster each master's connection (made on first use). */
  private connections(): Array<Redis | Cluster> {
    return this.client.isCluster ? [this.client, ...(this.client as Cluster).nodes('master')] : [this.client];
  }

  /** Waits for every connection to be ready, once for all the commands that ask meanwhile. */
  private connected(): Promise<void> {
    this.connecting ??= this.untilReady().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async untilReady(): Promise<void> {
    const deadline = performance.now() + this.options.connectTimeout;
    // A Cluster knows its masters once it is ready itself: look again after each wait.
    for (let waiting = this.connections().find((c) => c.status !== 'ready'); waiting !== undefined; waiting = this.connections().find((c) => c.status !== 'ready')) {
      await readyWithin(waiting, deadline - performance.now(), this.options.connectTimeout);
    }
  }
}

function readyWithin(connection: Redis | Cluster, ms: number, connectTimeout: number): Promise<void> {
  if (connection.status === 'end') return Promise.reject(new RedisOutage('the connection to Redis was closed for good', false));
  return new Promise<void>((resolve, reject) => {
    const finish = (err?: RedisOutage): void => {
      clearTimeout(timer);
      connection.off('ready', onReady);
      connection.off('close', onClose);
      connection.off('end', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onReady = (): void => finish();
    const onClose = (): void => finish(new RedisOutage('could not connect to Redis', false));
    // Like a command's deadline, the verdict waits for the poll phase: a connection made while the loop was busy counts.
    const timer = setTimeout(
      () => setImmediate(() => finish(connection.status === 'ready' ? undefined : new RedisOutage(`no connection to Redis within ${connectTimeout} ms`, false))),
      Math.max(0, ms),
    );
    connection.on('ready', onReady);
    connection.on('close', onClose);
    connection.on('end', onClose);
    if (connection.status === 'wait') connection.connect().catch(() => undefined);
  });
}
