import { ConfigError, describeValue } from '../errors.js';
import { oneOf, optionalFunction, optionalPath, optionalString, parseUrl, positiveInteger, rejectUnknownKeys } from '../option-checks.js';
import type { AccountLookup } from '../../transport/billing/account-lookup.js';
import { STRIPE_DIMENSIONS, STRIPE_METER_VALUES, type StripeMeter } from '../../transport/billing/stripe-meters.js';
import { stripeAvailable } from '../../transport/billing/stripe-sender.js';
import type { WireFormat } from '../../transport/http-sender.js';

/** Each sink has its own queue; these default to the Meter's options of the same names. */
export interface SinkQueueOptions {
  /** Names the sink in stats, warnings and the outbox (default: its type, then `type-2`, ...). Letters, digits, - and _. */
  name?: string;
  flushInterval?: number;
  maxBatchSize?: number;
  maxQueueSize?: number;
  requestTimeout?: number;
}

/** Your own ingest: `{"events":[...]}` or CloudEvents batches, gzip. */
export interface HttpSinkOptions extends SinkQueueOptions {
  type: 'http';
  url: string;
  apiKey?: string;
  format?: WireFormat;
  /** CloudEvents `source` (default `llm-meter`): keep it the same in every process so redeliveries are deduplicated. */
  source?: string;
  /** CloudEvents `subject` of events without a tenant (default `unattributed`). */
  subject?: string;
}

/** A JSON Lines file. */
export interface FileSinkOptions extends SinkQueueOptions {
  type: 'file';
  path: string;
}

/** Stripe meter events (Stripe's `stripe` package must be installed). */
export interface StripeSinkOptions extends SinkQueueOptions {
  type: 'stripe';
  /** A secret or restricted key that may write meter events. */
  apiKey: string;
  /** The Stripe customer of a tenant (may be async; answers are cached); undefined: the tenant's events are not sent. */
  customer: AccountLookup;
  meters: StripeMeter[];
  /** 'v2' (default): the meter event stream, up to 100 events a request; 'v1': one request per meter event. */
  api?: 'v2' | 'v1';
  /** Instead of Stripe's hosts (tests). */
  baseUrl?: string;
}

/** OpenMeter's event ingest (CloudEvents). */
export interface OpenMeterSinkOptions extends SinkQueueOptions {
  type: 'openmeter';
  /** Default https://openmeter.cloud. */
  baseUrl?: string;
  apiKey?: string;
  /** CloudEvents `source` (default `llm-meter`), the same in every process: OpenMeter dedupes on (source, id). */
  source?: string;
  /** The `subject` of events without a tenant (default `unattributed`): OpenMeter refuses events without one. */
  subject?: string;
  /** CloudEvents `type` of usage events (default `llm.usage`): what your meters select. */
  eventType?: string;
  /** CloudEvents `type` of outcome events (default `llm.outcome`). */
  outcomeEventType?: string;
}

/** Lago's batch events API. */
export interface LagoSinkOptions extends SinkQueueOptions {
  type: 'lago';
  apiKey: string;
  /** The Lago subscription (its external id) a tenant's usage counts toward; undefined: not sent. */
  subscription: AccountLookup;
  /** The billable metric code of usage events (default: the event's `metric_code`, else `llm_tokens`). */
  code?: string;
  /** The billable metric code of outcome events; without one, outcomes are not sent to Lago. */
  outcomeCode?: string;
  /** Default https://api.getlago.com. */
  baseUrl?: string;
}

export type SinkOptions = HttpSinkOptions | FileSinkOptions | StripeSinkOptions | OpenMeterSinkOptions | LagoSinkOptions;

export interface SinkQueue {
  flushInterval: number;
  maxBatchSize: number;
  maxQueueSize: number;
  requestTimeout: number;
}

export type ResolvedSink = { name: string; queue: SinkQueue } & (
  | { type: 'http'; url: URL; apiKey: string | undefined; format: WireFormat; source: string; subject: string }
  | { type: 'file'; path: string }
  | { type: 'stripe'; apiKey: string; customer: AccountLookup; meters: StripeMeter[]; api: 'v2' | 'v1'; baseUrl: URL | undefined; field: string }
  | { type: 'openmeter'; url: URL; apiKey: string | undefined; source: string; subject: string; eventType: string; outcomeEventType: string }
  | { type: 'lago'; url: URL; apiKey: string; subscription: AccountLookup; code: string | undefined; outcomeCode: string | undefined; field: string }
);

export const SINK_TYPES = ['http', 'file', 'stripe', 'openmeter', 'lago'] as const;

const QUEUE_KEYS = ['type', 'name', 'flushInterval', 'maxBatchSize', 'maxQueueSize', 'requestTimeout'];
const KNOWN_KEYS: Record<SinkOptions['type'], ReadonlySet<string>> = {
  http: new Set([...QUEUE_KEYS, 'url', 'apiKey', 'format', 'source', 'subject']),
  file: new Set([...QUEUE_KEYS, 'path']),
  stripe: new Set([...QUEUE_KEYS, 'apiKey', 'customer', 'meters', 'api', 'baseUrl']),
  openmeter: new Set([...QUEUE_KEYS, 'baseUrl', 'apiKey', 'source', 'subject', 'eventType', 'outcomeEventType']),
  lago: new Set([...QUEUE_KEYS, 'apiKey', 'subscription', 'code', 'outcomeCode', 'baseUrl']),
};
const METER_KEYS = new Set(['eventName', 'value', 'dimensions']);
const DEFAULT_SOURCE = 'llm-meter';
const DEFAULT_SUBJECT = 'unattributed';

/**
 * The Meter's sinks: `url` (an http sink) and `file` first, as shorthands, then `sinks` in order. Names are unique;
 * an unnamed sink is named by its type.
 */
export function resolveSinks(raw: Record<string, unknown>, defaults: SinkQueue): ResolvedSink[] {
  const shorthand: Array<Record<string, unknown>> = [];
  // Checked without url too: a format given with no url is a mistake to hear of, not to ignore.
  oneOf(raw, 'format', ['json', 'cloudevents'] as const);
  if (raw.url !== undefined) shorthand.push({ type: 'http', url: raw.url, apiKey: raw.apiKey, format: raw.format });
  const file = optionalPath(raw, 'file');
  if (file !== undefined) shorthand.push({ type: 'file', path: file });
  const listed = raw.sinks ?? [];
  if (!Array.isArray(listed)) throw new ConfigError(`sinks must be an array of sink options, got ${describeValue(listed)}`);
  const names = new Set<string>();
  const sinks = [...shorthand.map((s) => ({ options: s, at: '' })), ...listed.map((s: unknown, i) => ({ options: s, at: `sinks[${i}].` }))];
  return sinks.map(({ options, at }) => {
    const sink = resolveSink(options, at, defaults);
    let name = sink.name;
    if (names.has(name)) {
      if (sink.explicitName) throw new ConfigError(`${at}name ${JSON.stringify(name)} is used by another sink`);
      for (let n = 2; names.has(name); n++) name = `${sink.name}-${n}`;
    }
    names.add(name);
    return { ...sink.resolved, name } as ResolvedSink;
  });
}

function resolveSink(value: unknown, at: string, defaults: SinkQueue): { name: string; explicitName: boolean; resolved: Omit<ResolvedSink, 'name'> } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${at || 'a sink '}must be an object like { type: 'http', url: '...' }, got ${describeValue(value)}`);
  }
  const options = value as Record<string, unknown>;
  const type = options.type;
  if (!SINK_TYPES.includes(type as SinkOptions['type'])) {
    throw new ConfigError(`${at}type must be one of ${SINK_TYPES.map((t) => `'${t}'`).join(', ')}, got ${describeValue(type)}`);
  }
  const sinkType = type as SinkOptions['type'];
  rejectUnknownKeys(options, KNOWN_KEYS[sinkType], at === "" ? 'option' : `${at.slice(0, -1)} option`);
  const name = optionalString(options, 'name', at);
  if (name !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    throw new ConfigError(`${at}name must be 1-64 letters, digits, - or _, got ${describeValue(name)}`);
  }
  const maxBatchSize = positiveInteger(options, 'maxBatchSize', defaults.maxBatchSize, at);
  const maxQueueSize = positiveInteger(options, 'maxQueueSize', defaults.maxQueueSize, at);
  if (maxQueueSize < maxBatchSize) throw new ConfigError(`${at}maxQueueSize (${maxQueueSize}) must be at least maxBatchSize (${maxBatchSize})`);
  const queue: SinkQueue = {
    flushInterval: positiveInteger(options, 'flushInterval', defaults.flushInterval, at),
    maxBatchSize,
    maxQueueSize,
    requestTimeout: positiveInteger(options, 'requestTimeout', defaults.requestTimeout, at),
  };
  return { name: name ?? sinkType, explicitName: name !== undefined, resolved: { queue, ...typeOptions(sinkType, options, at) } as Omit<ResolvedSink, 'name'> };
}

function typeOptions(type: SinkOptions['type'], options: Record<string, unknown>, at: string): Record<string, unknown> {
  const apiKey = (required: boolean): string | undefined => {
    const key = optionalString(options, 'apiKey', at);
    if (required && key === undefined) throw new ConfigError(`${at}apiKey is required for a ${type} sink`);
    return key;
  };
  const url = (fallback: string, path: string): URL => new URL(path, baseUrl(options, at) ?? fallback);
  switch (type) {
    case 'http':
      if (options.url === undefined) throw new ConfigError(`${at}url is required for an http sink`);
      return {
        type,
        url: parseUrl(options.url, `${at}url`),
        apiKey: apiKey(false),
        format: oneOf(options, 'format', ['json', 'cloudevents'] as const, at),
        source: optionalString(options, 'source', at) ?? DEFAULT_SOURCE,
        subject: optionalString(options, 'subject', at) ?? DEFAULT_SUBJECT,
      };
    case 'file': {
      const path = optionalPath(options, 'path', at);
      if (path === undefined) throw new ConfigError(`${at}path is required for a file sink`);
      return { type, path };
    }
    case 'stripe':
      if (!stripeAvailable()) throw new ConfigError(`${at}type 'stripe' needs Stripe's library: npm install stripe`);
      return {
        type,
        apiKey: apiKey(true),
        customer: requiredFunction(options, 'customer', at),
        meters: stripeMeters(options.meters, `${at}meters`),
        api: oneOf(options, 'api', ['v2', 'v1'] as const, at),
        baseUrl: baseUrl(options, at),
        field: `${at}customer`,
      };
    case 'openmeter':
      return {
        type,
        url: url('https://openmeter.cloud', 'api/v1/events'),
        apiKey: apiKey(false),
        source: optionalString(options, 'source', at) ?? DEFAULT_SOURCE,
        subject: optionalString(options, 'subject', at) ?? DEFAULT_SUBJECT,
        eventType: optionalString(options, 'eventType', at) ?? 'llm.usage',
        outcomeEventType: optionalString(options, 'outcomeEventType', at) ?? 'llm.outcome',
      };
    case 'lago':
      return {
        type,
        url: url('https://api.getlago.com', 'api/v1/events/batch'),
        apiKey: apiKey(true),
        subscription: requiredFunction(options, 'subscription', at),
        code: optionalString(options, 'code', at),
        outcomeCode: optionalString(options, 'outcomeCode', at),
        field: `${at}subscription`,
      };
  }
}

function baseUrl(options: Record<string, unknown>, at: string): URL | undefined {
  const url = parseUrl(options.baseUrl, `${at}baseUrl`);
  if (url !== undefined && !url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function requiredFunction<T>(options: Record<string, unknown>, field: string, at: string): T {
  const fn = optionalFunction<T>(options, field, at);
  if (fn === undefined) throw new ConfigError(`${at}${field} is required: a function from a tenant id to an id in the billing system`);
  return fn;
}

function stripeMeters(value: unknown, at: string): StripeMeter[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ConfigError(`${at} must be a non-empty array like [{ eventName: 'llm_tokens', value: 'total_tokens' }], got ${describeValue(value)}`);
  }
  const eventNames = new Set<string>();
  return value.map((meter: unknown, i) => {
    const where = `${at}[${i}].`;
    if (meter === null || typeof meter !== 'object') throw new ConfigError(`${at}[${i}] must be an object, got ${describeValue(meter)}`);
    const options = meter as Record<string, unknown>;
    rejectUnknownKeys(options, METER_KEYS, `${where.slice(0, -1)} option`);
    const eventName = optionalString(options, 'eventName', where);
    if (eventName === undefined || eventName.length > 100) {
      throw new ConfigError(`${where}eventName must be a non-empty string of at most 100 characters, got ${describeValue(options.eventName)}`);
    }
    if (eventNames.has(eventName)) throw new ConfigError(`${where}eventName ${JSON.stringify(eventName)} is used by another meter`);
    eventNames.add(eventName);
    if (options.value === undefined) throw new ConfigError(`${where}value is required: one of ${STRIPE_METER_VALUES.map((v) => `'${v}'`).join(', ')}`);
    const meterValue = oneOf(options, 'value', STRIPE_METER_VALUES, where);
    const dimensions = options.dimensions ?? [];
    if (!Array.isArray(dimensions) || !dimensions.every((d) => STRIPE_DIMENSIONS.includes(d))) {
      throw new ConfigError(`${where}dimensions must be an array of ${STRIPE_DIMENSIONS.map((d) => `'${d}'`).join(', ')}, got ${describeValue(dimensions)}`);
    }
    return { eventName, value: meterValue, dimensions: [...(dimensions as StripeMeter['dimensions'] & unknown[])] };
  });
}

/** What no log line may show: every sink's key and any password in its url. */
export function sinkSecrets(sinks: readonly ResolvedSink[]): Array<string | undefined> {
  return sinks.flatMap((sink) => [
    'apiKey' in sink ? sink.apiKey : undefined,
    'url' in sink ? sink.url.password : undefined,
    'baseUrl' in sink ? sink.baseUrl?.password : undefined,
  ]);
}
