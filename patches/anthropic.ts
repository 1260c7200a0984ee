import type { RawUsage } from '../src/event.js';
import type { InputPart } from '../src/limits/estimate.js';
import { asRecord, clientBaseUrl, objectAt, stringField, type HookTarget, type ProviderPatch, type RequestFacts, type ResponseFacts } from './provider.js';

function readParams(args: readonly unknown[]): RequestFacts {
  const params = asRecord(args[0]);
  return { model: stringField(params, 'model'), stream: params?.stream === true };
}

/** Server tools whose results enter the model's input, billed as input tokens. */
const SERVER_TOOLS = /^(web_search|web_fetch|code_execution|tool_search|memory)_/;

function classifyInput(part: Record<string, unknown>): InputPart {
  const type = part.type;
  if (type === 'image') return 'image';
  if (type === 'document') {
    // Plain-text and content documents are measured as the text they carry.
    const sourceType = asRecord(part.source)?.type;
    return sourceType === 'text' || sourceType === 'content' ? undefined : 'document';
  }
  if (type === 'container_upload') return 'document';
  if (typeof type === 'string' && SERVER_TOOLS.test(type)) return 'unbounded';
  if (Array.isArray(part.mcp_servers) && part.mcp_servers.length > 0) return 'unbounded';
  return undefined;
}

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** One sampling iteration's pools, as reported (unvalidated). */
function iterationPools(usage: Record<string, unknown>): RawUsage {
  const cacheCreation = asRecord(usage.cache_creation);
  const pools: RawUsage = {
    input_tokens: usage.input_tokens,
    output_tokens: usage.output_tokens,
    cached_tokens: usage.cache_read_input_tokens,
    cache_creation_tokens: usage.cache_creation_input_tokens,
    reasoning_tokens: asRecord(usage.output_tokens_details)?.thinking_tokens,
  };
  // A stream's last message_delta updates the cache-write total but not its split: a stale split is left out.
  const split5m = cacheCreation?.ephemeral_5m_input_tokens;
  const split1h = cacheCreation?.ephemeral_1h_input_tokens;
  if (count(split5m) + count(split1h) === count(usage.cache_creation_input_tokens)) {
    pools.cache_creation_5m_tokens = split5m;
    pools.cache_creation_1h_tokens = split1h;
  }
  return pools;
}

/** Sums field by field; a value that is not a number makes its sum NaN, which the event rejects as invalid usage. */
function sumPools(parts: readonly RawUsage[]): RawUsage {
  const sum: Record<string, number> = {};
  for (const part of parts) {
    for (const [field, value] of Object.entries(part)) {
      if (value !== undefined && value !== null) sum[field] = (sum[field] ?? 0) + (typeof value === 'number' ? value : NaN);
    }
  }
  return sum;
}

/**
 * Anthropic bills four pools: input (which EXCLUDES cache reads and writes), cache read, cache write (5 m / 1 h) and
 * output (thinking included). The event keeps them apart and totals all four. With context compaction the top-level
 * counts are the final iteration's only; every entry of `usage.iterations` is billed, so those are summed instead.
 */
function messageUsage(raw: unknown): RawUsage | undefined {
  const usage = asRecord(raw);
  if (usage === undefined) return undefined;
  const iterations = Array.isArray(usage.iterations) ? usage.iterations.map((i) => asRecord(i) ?? {}) : [];
  const pools = iterations.length > 0 ? sumPools(iterations.map(iterationPools)) : iterationPools(usage);
  const webSearches = asRecord(usage.server_tool_use)?.web_search_requests;
  // `pools` is this call's own object: filled in, not copied (see src/fast-objects.ts).
  pools.total_tokens = count(pools.input_tokens) + count(pools.cached_tokens) + count(pools.cache_creation_tokens) + count(pools.output_tokens);
  pools.web_search_requests = typeof webSearches === 'number' && webSearches > 0 ? webSearches : undefined;
  pools.service_tier = usage.service_tier;
  pools.inference_geo = usage.inference_geo;
  pools.speed = usage.speed;
  return pools;
}

function messageFacts(message: Record<string, unknown> | undefined): ResponseFacts {
  return { model: stringField(message, 'model'), responseId: stringField(message, 'id'), usage: messageUsage(message?.usage) };
}

/** The stream's usage as the agent's own copy accumulates it, read into the event's counts once, when recorded. */
function accumulatedUsage(facts: ResponseFacts): Record<string, unknown> {
  if (facts.providerUsage === undefined) {
    facts.providerUsage = {};
    facts.readProviderUsage = messageUsage;
  }
  return facts.providerUsage;
}

/**
 * `message_start` carries input and cache counts (and a provisional output count); each `message_delta` carries the
 * usage so far, CUMULATIVE: its non-null fields overwrite, never add.
 */
function readStreamEvent(item: unknown, facts: ResponseFacts): boolean {
  const event = asRecord(item);
  if (event?.type === 'message_start') {
    const message = asRecord(event.message);
    facts.model = stringField(message, 'model');
    facts.responseId = stringField(message, 'id');
    Object.assign(accumulatedUsage(facts), asRecord(message?.usage));
  } else if (event?.type === 'message_delta') {
    const merged = accumulatedUsage(facts);
    for (const [key, value] of Object.entries(asRecord(event.usage) ?? {})) if (value !== null && value !== undefined) merged[key] = value;
  } else if (event?.type === 'message_stop') {
    facts.complete = true;
  }
  return false;
}

const messages: HookTarget = {
  endpoint: 'messages',
  classPath: ['Messages'],
  clientPath: ['messages'],
  method: 'create',
  path: '/v1/messages',
  readRequest: readParams,
  outputCap: [['max_tokens']],
  readResponse: (data) => messageFacts(asRecord(data)),
  readStreamItem: readStreamEvent,
};

/** Batch usage appears only in the results: each succeeded row is one billed message, hence one event. */
const batchResults: HookTarget = {
  endpoint: 'messages.batches',
  classPath: ['Messages', 'Batches'],
  clientPath: ['messages', 'batches'],
  method: 'results',
  readRequest: () => ({ model: undefined, stream: false }),
  paidEarlier: true,
  readResponse: () => ({}),
  readEachItem: (item) => {
    const result = asRecord(asRecord(item)?.result);
    if (result?.type !== 'succeeded') return undefined;
    const facts = messageFacts(asRecord(result.message));
    // Billed at batch rates whatever the row's message says of its tier.
    if (facts.usage !== undefined) facts.usage.service_tier = 'batch';
    return facts;
  },
};

export const anthropicPatch: ProviderPatch = {
  name: 'anthropic',
  provider: 'anthropic',
  packageName: '@anthropic-ai/sdk',
  classFiles: /^client\.(js|mjs)$/,
  style: 'api-promise',
  requestMethod: 'methodRequest',
  rawRequestMethod: 'request',
  bodyEncoder: 'buildBody',
  // Counting tokens, files, skills, models and cancelling cost nothing per request.
  requestRoutes: { freePosts: /^\/v1\/(messages\/count_tokens|files(\/.*)?|skills(\/.*)?|models(\/.*)?|.*\/cancel)$/ },
  inputExcludesCache: true,
  requestIdHeader: 'request-id',
  baseUrl: clientBaseUrl,
  classifyInput,
  root: (moduleExports) => {
    const ns = moduleExports as Record<string, unknown>;
    return ns.Anthropic ?? ns.default ?? moduleExports;
  },
  isClient: (client) =>
    typeof objectAt(client, ['messages', 'create']) === 'function' && typeof objectAt(client, ['messages', 'countTokens']) === 'function',
  targets: [
    messages,
    { ...messages, endpoint: 'beta.messages', classPath: ['Beta', 'Messages'], clientPath: ['beta', 'messages'], path: '/v1/messages?beta=true' },
    // The tool runner sends its requests lazily, when it is read or awaited: they belong to the scope that created it.
    { ...messages, endpoint: 'beta.messages', classPath: ['Beta', 'Messages'], clientPath: ['beta', 'messages'], method: 'toolRunner', path: undefined, bindsCallerContext: true },
    batchResults,
    { ...batchResults, classPath: ['Beta', 'Messages', 'Batches'], clientPath: ['beta', 'messages', 'batches'] },
  ],
};
