import { ConfigError, describeValue, type LimitFrequency } from './errors.js';
import { oneOf, optionalBoolean, optionalFunction, optionalPath, optionalString, parseUrl, positiveInteger, rejectUnknownKeys } from './option-checks.js';
import { validateThresholds, type BudgetAlertOptions, type ThresholdAlert } from './limits/controls/budget-alerts.js';
import { usdAmount, validateLimitTerms } from './limits/spend-limits.js';
import { toNano, type LimitMode, type TenantLimit } from './limits/store.js';
import { FREQUENCIES } from './limits/windows.js';
import { resolveSinks, type ResolvedSink, type SinkOptions } from './delivery/sink-options.js';
import type { OutcomeEvent, UsageEvent } from './event.js';
import type { Enforcement } from './limits/store.js';
import { validatePriceOverrides, type PriceOverride } from './pricing/price-book.js';
import type { UnknownModelPolicy } from './limits/spend-limits.js';
import { validateTimeZone } from './limits/windows.js';
import { DEFAULT_MAX_INPUT_TOKENS, resolveMediaTokens, type MediaTokenCeilings } from './limits/input-ceilings.js';
import type { WireFormat } from '../transport/http-sender.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, type RedisStoreOptions } from './limits/redis-store.js';
import type { AppRedisClient } from './limits/redis/app-redis-client.js';
import type { PatchName } from '../patches/names.js';
import type { PriceKey, ProviderId } from './providers/provider-id.js';
import type { OpenTelemetryOptions, OtelMeterProvider } from './telemetry/genai-metrics.js';
import type { FailMode } from './limits/store.js';
import type { BackendStoreOptions } from './limits/backend-store.js';
import { validateProviderHosts } from './providers/identity.js';

export interface MeterOptions {
  /** Ingest endpoint. Absent: nothing leaves the process; events reach `onEvent` only. */
  url?: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Milliseconds between flushes (default 5000). */
  flushInterval?: number;
  /** Flush early once this many events are queued (default 50). */
  maxBatchSize?: number;
  /** Queue bound; overflow drops the oldest event and counts it (default 1000). */
  maxQueueSize?: number;
  /** Log each captured event (counts only) to stderr. */
  debug?: boolean;
  /** Let faults inside the agent reach the app (default false). */
  raiseOnError?: boolean;
  onEvent?: (event: UsageEvent) => void;
  /** Each run's outcome event (`meter.resolve`), as it is handed to delivery. */
  onOutcome?: (event: OutcomeEvent) => void;
  onFlushError?: (err: Error) => void;
  /** Providers to patch (default: every built-in one). */
  patches?: PatchName[];
  /** Your own prices, keyed 'provider:model', in USD per million tokens: they win over the bundled price data. */
  prices?: Partial<Record<PriceKey, PriceOverride>>;
  /**
   * Hosts the price data does not know, mapped to the provider they serve: a host (`'llm.internal.example.com'`,
   * `'localhost:8000'`) or a base-URL prefix (`'https://gateway.example.com/deepseek'`) to a provider id (`'deepseek'`).
   */
  providerHosts?: Record<string, ProviderId>;
  /** May a tenant with a limit call a model that has no known price? (default 'allow') */
  unknownModel?: UnknownModelPolicy;
  /** 'strict' (default): admit only when spent + reserved + this call's reservation fits; 'lenient': while spent + reserved < limit. */
  enforcement?: Enforcement;
  /** Refuse calls made outside any tenant scope (default false). */
  requireTenant?: boolean;
  /** IANA time zone of the calendar windows (default UTC). */
  timezone?: string;
  /**
   * Output tokens a reservation assumes when a request sets no maximum (default 4096); in strict mode a limited
   * tenant's request that sets none is sent with this cap.
   */
  defaultMaxOutputTokens?: number;
  /** Input tokens a call reserves when its input cannot be bounded and the model's context window is unknown (default 1,048,576). */
  maxInputTokens?: number;
  /** Per-item token ceilings for media in the input, per provider and kind (see the README for the defaults). */
  mediaTokens?: MediaTokenCeilings;
  /** The clock for calendar windows, in ms since the epoch (for tests). */
  clock?: () => number;
  /** Per-request timeout of a POST to the ingest, in ms (default 10000). */
  requestTimeout?: number;
  /** How long shutdown() and the exit paths wait for queued events to be delivered, in ms (default 5000). */
  shutdownTimeout?: number;
  /** 'json' (default): `{"events":[...]}`; 'cloudevents': a CloudEvents 1.0 batch. */
  format?: WireFormat;
  /** Append every event to this JSON Lines file (with or without `url`). */
  file?: string;
  /**
   * Where events go, each sink with its own queue, retries and stats: your ingest, a file, Stripe, OpenMeter, Lago.
   * `url` and `file` are shorthands for the first two.
   */
  sinks?: SinkOptions[];
  /**
   * A directory for the durable outbox: each event is written there before any sink gets it and kept until every sink
   * is done with it; what a crash left undelivered is sent on the next start.
   */
  outbox?: string | OutboxOptions;
  /** Flush on beforeExit, SIGTERM and SIGINT (default true). */
  handleExit?: boolean;
  /** Where spend limits live: Redis (a fleet-wide ledger) or the app's own backend (default: in this process). */
  limits?: LimitsOptions | BackendLimitsOptions;
  /** The limit (or one per frequency) of every tenant that has no limit of its own; setLimit overrides it per tenant. */
  defaultLimit?: DefaultLimit | DefaultLimit[];
  /** Fractions of a limit at which `onThreshold` and the webhook hear of a tenant's spend, once per window (default [1]). */
  thresholds?: number[];
  /** A tenant's spend reached a threshold of one of its limits: once per tenant, window and threshold (fleet-wide on Redis). */
  onThreshold?: (alert: ThresholdAlert) => void;
  /** POSTed each threshold alert as JSON (with `Authorization: Bearer <apiKey>` when given). */
  thresholdWebhook?: string | { url: string; apiKey?: string };
  /**
   * The OpenTelemetry GenAI client metrics of every call (token usage, operation duration) and a cost counter, on the
   * app's MeterProvider (`true`: the global one of @opentelemetry/api, an optional peer loaded only then).
   */
  openTelemetry?: boolean | OpenTelemetryOptions;
}

export interface DefaultLimit {
  limitUsd: number;
  frequency: LimitFrequency;
  mode?: LimitMode;
  thresholds?: number[];
}

export interface OutboxOptions {
  dir: string;
  /** Bytes on disk at most (default 256 MiB); past it, events are delivered from memory only, and counted. */
  maxBytes?: number;
  /** A segment file is closed past this size (default 8 MiB) and deleted once every sink is done with it. */
  segmentBytes?: number;
  /** fdatasync each write before the sinks get its events (default false): survives power loss, not just a crash. */
  fsync?: boolean;
}

/** The app's own backend as the limit store: see the README for its protocol. Each request has `requestTimeout` to complete. */
export interface BackendLimitsOptions {
  url: string;
  apiKey?: string;
  /** ms, default 5000: how long an answer from the backend is trusted. */
  limitCheckCacheTtl?: number;
  /**
   * Backend down: 'open' (default) goes on enforcing the backend's last answers plus this process's own spend;
   * 'closed' refuses limited calls.
   */
  failMode?: FailMode;
  /** ms, default 5000: how long the agent leaves a failed backend alone before trying again. */
  retryAfter?: number;
}

export interface LimitsOptions {
  /** A redis:// url (the agent opens its own connection), or an ioredis client of the app's: a Redis or a Cluster. */
  redis: string | AppRedisClient;
  /** Default 'llm-meter:'. No braces: the tenant's `{...}` must be the keys' hash tag. */
  keyPrefix?: string;
  /**
   * Redis down: 'open' (default) keeps enforcing limits on each process's own spend from the last state Redis reported;
   * 'closed' refuses limited calls. Either way settlements are journalled and written when Redis answers again.
   */
  failMode?: FailMode;
  /**
   * ms, default 100: a command counts Redis as down when Redis answered nothing at all for this long while it waited
   * (time the app kept the event loop busy does not count; no command waits more than 20 times this, at least 5 s).
   */
  commandTimeout?: number;
  /** ms, default 2000: how long a command may wait for the connection to Redis to be ready. */
  connectTimeout?: number;
  /** ms, default 5000: how long the agent leaves a failed Redis alone before trying again. */
  retryAfter?: number;
  /** ms, default 15 minutes: how long the reservation of a process that died mid-call stays counted. */
  leaseMs?: number;
}

export interface ResolvedConfig {
  sinks: ResolvedSink[];
  outbox: Required<OutboxOptions> | undefined;
  flushInterval: number;
  maxBatchSize: number;
  maxQueueSize: number;
  debug: boolean;
  raiseOnError: boolean;
  onEvent: ((event: UsageEvent) => void) | undefined;
  onOutcome: ((event: OutcomeEvent) => void) | undefined;
  onFlushError: ((err: Error) => void) | undefined;
  patches: PatchName[];
  prices: Record<string, PriceOverride>;
  providerHosts: ReturnType<typeof validateProviderHosts>;
  unknownModel: UnknownModelPolicy;
  enforcement: Enforcement;
  requireTenant: boolean;
  timezone: string | undefined;
  defaultMaxOutputTokens: number;
  maxInputTokens: number;
  mediaTokens: MediaTokenCeilings;
  clock: () => number;
  requestTimeout: number;
  shutdownTimeout: number;
  handleExit: boolean;
  defaultLimits: TenantLimit[];
  alerts: BudgetAlertOptions;
  openTelemetry: OpenTelemetryOptions | undefined;
  limits: ({ kind: 'redis' } & Omit<RedisStoreOptions, 'clock'>) | ({ kind: 'backend' } & Omit<BackendStoreOptions, 'clock'>) | undefined;
}

const KNOWN_OPTIONS = new Set([
  'url', 'apiKey', 'flushInterval', 'maxBatchSize', 'maxQueueSize', 'debug', 'raiseOnError', 'onEvent', 'onOutcome', 'onFlushError', 'patches',
  'prices', 'providerHosts', 'unknownModel', 'enforcement', 'requireTenant', 'timezone', 'defaultMaxOutputTokens', 'maxInputTokens', 'mediaTokens', 'clock',
  'requestTimeout', 'shutdownTimeout', 'format', 'file', 'sinks', 'outbox', 'handleExit', 'limits', 'defaultLimit', 'thresholds',
  'onThreshold', 'thresholdWebhook', 'openTelemetry',
]);
const KNOWN_DEFAULT_LIMIT_OPTIONS = new Set(['limitUsd', 'frequency', 'mode', 'thresholds']);

function resolveDefaultLimits(value: unknown): TenantLimit[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  const frequencies = new Set<string>();
  return list.map((item: unknown, i) => {
    const at = Array.isArray(value) ? `defaultLimit[${i}].` : 'defaultLimit.';
    if (item === null || typeof item !== 'object') throw new ConfigError(`${at.slice(0, -1)} must be an object like { limitUsd: 20, frequency: 'per_month' }, got ${describeValue(item)}`);
    const raw = item as Record<string, unknown>;
    rejectUnknownKeys(raw, KNOWN_DEFAULT_LIMIT_OPTIONS, `${at.slice(0, -1)} option`);
    const limitUsd = usdAmount(raw.limitUsd, `${at}limitUsd`);
    const frequency = oneOf(raw, 'frequency', FREQUENCIES, at);
    if (raw.frequency === undefined) throw new ConfigError(`${at}frequency is required: 'per_day' or 'per_month'`);
    if (frequencies.has(frequency)) throw new ConfigError(`${at}frequency ${JSON.stringify(frequency)} has a default limit already`);
    frequencies.add(frequency);
    return { ...validateLimitTerms(raw, at), frequency, limitNano: toNano(limitUsd) };
  });
}

function resolveWebhook(value: unknown): BudgetAlertOptions['webhook'] {
  if (value === undefined) return undefined;
  const raw = (typeof value === 'string' ? { url: value } : value) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object') throw new ConfigError(`thresholdWebhook must be a url or { url, apiKey? }, got ${describeValue(value)}`);
  rejectUnknownKeys(raw, new Set(['url', 'apiKey']), 'thresholdWebhook option');
  if (raw.url === undefined) throw new ConfigError('thresholdWebhook.url is required');
  return { url: parseUrl(raw.url, 'thresholdWebhook.url')!, apiKey: optionalString(raw, 'apiKey', 'thresholdWebhook.') };
}
const KNOWN_OUTBOX_OPTIONS = new Set(['dir', 'maxBytes', 'segmentBytes', 'fsync']);

function resolveOutbox(value: unknown): ResolvedConfig['outbox'] {
  if (value === undefined) return undefined;
  const raw = (typeof value === 'string' ? { dir: value } : value) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object') throw new ConfigError(`outbox must be a directory path or { dir, maxBytes?, segmentBytes?, fsync? }, got ${describeValue(value)}`);
  rejectUnknownKeys(raw, KNOWN_OUTBOX_OPTIONS, 'outbox option');
  const dir = optionalPath(raw, 'dir', 'outbox.');
  if (dir === undefined) throw new ConfigError('outbox.dir is required: the directory of the outbox');
  return {
    dir,
    maxBytes: positiveInteger(raw, 'maxBytes', 256 * 1024 * 1024, 'outbox.'),
    segmentBytes: positiveInteger(raw, 'segmentBytes', 8 * 1024 * 1024, 'outbox.'),
    fsync: optionalBoolean(raw, 'fsync', 'outbox.'),
  };
}

const KNOWN_LIMITS_OPTIONS = new Set(['redis', 'keyPrefix', 'failMode', 'commandTimeout', 'connectTimeout', 'retryAfter', 'leaseMs']);
const KNOWN_BACKEND_OPTIONS = new Set(['url', 'apiKey', 'limitCheckCacheTtl', 'failMode', 'retryAfter']);

function resolveLimits(value: unknown, timeoutMs: number): ResolvedConfig['limits'] {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object') throw new ConfigError(`limits must be an object like { redis: 'redis://host:6379' }, got ${describeValue(value)}`);
  const raw = value as Record<string, unknown>;
  if ('url' in raw) {
    for (const key of Object.keys(raw)) if (!KNOWN_BACKEND_OPTIONS.has(key)) throw new ConfigError(`unknown limits option ${JSON.stringify(key)}`);
    if (raw.apiKey !== undefined && (typeof raw.apiKey !== 'string' || raw.apiKey === '')) throw new ConfigError('limits.apiKey must be a non-empty string');
    const url = parseUrl(raw.url, 'limits.url');
    return {
      kind: 'backend',
      url: url!,
      apiKey: raw.apiKey as string | undefined,
      cacheTtl: positiveInteger(raw, 'limitCheckCacheTtl', 5000, 'limits.'),
      failMode: oneOf(raw, 'failMode', ['open', 'closed'] as const, 'limits.'),
      retryAfter: positiveInteger(raw, 'retryAfter', 5000, 'limits.'),
      timeoutMs,
    };
  }
  for (const key of Object.keys(raw)) if (!KNOWN_LIMITS_OPTIONS.has(key)) throw new ConfigError(`unknown limits option ${JSON.stringify(key)}`);
  const redis = raw.redis;
  if (typeof redis === 'string') {
    if (!/^rediss?:\/\//.test(redis)) throw new ConfigError(`limits.redis must be a redis:// or rediss:// url or an ioredis client, got a string that is neither`);
  } else if (redis === null || typeof redis !== 'object' || typeof (redis as { evalsha?: unknown }).evalsha !== 'function') {
    throw new ConfigError(`limits.redis must be a redis:// url or an ioredis client, got ${describeValue(redis)}`);
  }
  const keyPrefix = raw.keyPrefix ?? 'llm-meter:';
  if (typeof keyPrefix !== 'string' || /[{}]/.test(keyPrefix)) throw new ConfigError(`limits.keyPrefix must be a string without braces, got ${describeValue(keyPrefix)}`);
  return {
    kind: 'redis',
    redis: redis as string | AppRedisClient,
    keyPrefix,
    failMode: oneOf(raw, 'failMode', ['open', 'closed'] as const, 'limits.'),
    commandTimeout: positiveInteger(raw, 'commandTimeout', 100, 'limits.'),
    connectTimeout: positiveInteger(raw, 'connectTimeout', DEFAULT_CONNECT_TIMEOUT_MS, 'limits.'),
    retryAfter: positiveInteger(raw, 'retryAfter', 5000, 'limits.'),
    leaseMs: positiveInteger(raw, 'leaseMs', 15 * 60 * 1000, 'limits.'),
  };
}

export function resolveConfig(options: MeterOptions, builtInPatches: readonly string[]): ResolvedConfig {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(`Meter options must be an object, got ${describeValue(options)}`);
  }
  const raw = options as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_OPTIONS.has(key)) throw new ConfigError(`unknown Meter option ${JSON.stringify(key)}`);
  }
  if (raw.apiKey !== undefined && (typeof raw.apiKey !== 'string' || raw.apiKey.length === 0)) {
    throw new ConfigError(`apiKey must be a non-empty string, got ${typeof raw.apiKey === 'string' ? 'an empty string' : typeof raw.apiKey}`);
  }
  const patches = raw.patches ?? [...builtInPatches];
  if (!Array.isArray(patches)) throw new ConfigError(`patches must be an array of provider names, got ${describeValue(patches)}`);
  for (const name of patches) {
    if (typeof name !== 'string' || !builtInPatches.includes(name)) {
      throw new ConfigError(`patches: unknown provider ${describeValue(name)} (known: ${builtInPatches.join(', ')})`);
    }
  }
  const maxBatchSize = positiveInteger(raw, 'maxBatchSize', 50);
  const maxQueueSize = positiveInteger(raw, 'maxQueueSize', 1000);
  if (maxQueueSize < maxBatchSize) {
    throw new ConfigError(`maxQueueSize (${maxQueueSize}) must be at least maxBatchSize (${maxBatchSize})`);
  }
  const flushInterval = positiveInteger(raw, 'flushInterval', 5000);
  const requestTimeout = positiveInteger(raw, 'requestTimeout', 10_000);
  return {
    sinks: resolveSinks(raw, { flushInterval, maxBatchSize, maxQueueSize, requestTimeout }),
    outbox: resolveOutbox(raw.outbox),
    flushInterval,
    maxBatchSize,
    maxQueueSize,
    debug: optionalBoolean(raw, 'debug'),
    raiseOnError: optionalBoolean(raw, 'raiseOnError'),
    onEvent: optionalFunction(raw, 'onEvent'),
    onOutcome: optionalFunction(raw, 'onOutcome'),
    onFlushError: optionalFunction(raw, 'onFlushError'),
    patches: [...(patches as PatchName[])],
    prices: validatePriceOverrides(raw.prices),
    providerHosts: validateProviderHosts(raw.providerHosts),
    unknownModel: oneOf(raw, 'unknownModel', ['allow', 'block'] as const),
    enforcement: oneOf(raw, 'enforcement', ['strict', 'lenient'] as const),
    requireTenant: optionalBoolean(raw, 'requireTenant'),
    timezone: validateTimeZone(raw.timezone),
    defaultMaxOutputTokens: positiveInteger(raw, 'defaultMaxOutputTokens', 4096),
    maxInputTokens: positiveInteger(raw, 'maxInputTokens', DEFAULT_MAX_INPUT_TOKENS),
    mediaTokens: resolveMediaTokens(raw.mediaTokens),
    clock: optionalFunction<() => number>(raw, 'clock') ?? Date.now,
    requestTimeout,
    shutdownTimeout: positiveInteger(raw, 'shutdownTimeout', 5_000),
    handleExit: raw.handleExit === undefined ? true : optionalBoolean(raw, 'handleExit'),
    limits: resolveLimits(raw.limits, requestTimeout),
    defaultLimits: resolveDefaultLimits(raw.defaultLimit),
    alerts: {
      thresholds: validateThresholds(raw.thresholds, 'thresholds') ?? [1],
      onThreshold: optionalFunction(raw, 'onThreshold'),
      webhook: resolveWebhook(raw.thresholdWebhook),
      timeoutMs: requestTimeout,
      onError: () => undefined,
    },
    openTelemetry: resolveOpenTelemetry(raw.openTelemetry),
  };
}

const KNOWN_OPEN_TELEMETRY_OPTIONS = new Set(['meterProvider', 'tenantAttribute']);

function resolveOpenTelemetry(value: unknown): OpenTelemetryOptions | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return {};
  if (value === null || typeof value !== 'object') throw new ConfigError(`openTelemetry must be true or { meterProvider?, tenantAttribute? }, got ${describeValue(value)}`);
  const raw = value as Record<string, unknown>;
  rejectUnknownKeys(raw, KNOWN_OPEN_TELEMETRY_OPTIONS, 'openTelemetry option');
  const provider = raw.meterProvider;
  if (provider !== undefined && (provider === null || typeof (provider as { getMeter?: unknown }).getMeter !== 'function')) {
    throw new ConfigError(`openTelemetry.meterProvider must be an OpenTelemetry MeterProvider (with getMeter), got ${describeValue(provider)}`);
  }
  const attribute = raw.tenantAttribute;
  if (attribute !== undefined && attribute !== false && (typeof attribute !== 'string' || attribute.trim() === '')) {
    throw new ConfigError(`openTelemetry.tenantAttribute must be an attribute name or false, got ${describeValue(attribute)}`);
  }
  return { ...(provider !== undefined && { meterProvider: provider as OtelMeterProvider }), ...(attribute !== undefined && { tenantAttribute: attribute as string | false }) };
}
