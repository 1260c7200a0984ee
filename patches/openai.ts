import type { RawUsage } from '../src/event.js';
import type { InputPart } from '../src/limits/estimate.js';
import { asRecord, clientBaseUrl, objectAt, stringField, type HookTarget, type PreparedCall, type ProviderPatch, type RequestFacts, type ResponseFacts } from './provider.js';

// ---- reading the request -------------------------------------------------------------------------------------------

export function readParams(args: readonly unknown[]): RequestFacts {
  const params = asRecord(args[0]);
  return { model: stringField(params, 'model'), stream: params?.stream === true };
}

/** Tools that run at the provider and feed what they find back into the model's input. */
const SERVER_TOOLS = /^(web_search|file_search|code_interpreter|mcp|image_generation|computer_use|local_shell|shell)/;

export function classifyInput(part: Record<string, unknown>): InputPart {
  const type = part.type;
  if (type === 'image_url' || type === 'input_image') return 'image';
  if (type === 'input_audio') return 'audio';
  if (type === 'file' || type === 'input_file') return 'document';
  if (typeof type === 'string' && SERVER_TOOLS.test(type)) return 'unbounded';
  // Server-side conversation state: the input the request carries is only the newest part of what is billed.
  if (typeof part.previous_response_id === 'string' || (part.conversation !== undefined && part.conversation !== null)) return 'unbounded';
  if (typeof asRecord(part.prompt)?.id === 'string') return 'unbounded';
  return undefined;
}

/** Azure api-versions before 2024-09-01 reject `stream_options`. */
function acceptsStreamOptions(resource: unknown): boolean {
  const apiVersion = stringField(objectAt(resource, ['_client']), 'apiVersion');
  return apiVersion === undefined || apiVersion >= '2024-09-01';
}

/**
 * Chat streams carry usage only when `stream_options.include_usage` is set. When the caller did not set it, the agent
 * adds it where the body is encoded (the caller's params object is sent as is), and hides the extra usage-only chunk
 * from the caller.
 */
function requestStreamUsage(args: readonly unknown[], resource: unknown): PreparedCall | undefined {
  const params = asRecord(args[0]);
  if (params?.stream !== true) return undefined;
  const streamOptions = asRecord(params.stream_options);
  if (streamOptions?.include_usage === true || !acceptsStreamOptions(resource)) return undefined;
  return { hideInjected: true, bodyAdditions: { stream_options: { include_usage: true } } };
}

// ---- reading usage -------------------------------------------------------------------------------------------------

const positive = (value: unknown): unknown => (typeof value === 'number' && value === 0 ? undefined : value);

/**
 * Usage of a chat or legacy completion, or of a stream's usage chunk; the tier is on the body, beside the usage.
 * DeepSeek reports its cache hits as `prompt_cache_hit_tokens` (part of `prompt_tokens`, as OpenAI's cached tokens are).
 */
export function chatUsage(body: Record<string, unknown> | undefined): RawUsage | undefined {
  const usage = asRecord(body?.usage);
  if (usage === undefined) return undefined;
  const prompt = asRecord(usage.prompt_tokens_details);
  const completion = asRecord(usage.completion_tokens_details);
  return {
    input_tokens: usage.prompt_tokens,
    output_tokens: usage.completion_tokens ?? 0,
    total_tokens: usage.total_tokens,
    cached_tokens: prompt?.cached_tokens ?? usage.prompt_cache_hit_tokens,
    cache_creation_tokens: prompt?.cache_write_tokens,
    reasoning_tokens: completion?.reasoning_tokens,
    audio_input_tokens: positive(prompt?.audio_tokens),
    audio_output_tokens: positive(completion?.audio_tokens),
    service_tier: body?.service_tier,
  };
}

/** How many output items are of `itemType` (and, when given, of that `action.type`). */
function countItems(output: unknown, itemType: string, actionType?: string): number {
  if (!Array.isArray(output)) return 0;
  return output.filter((item) => {
    const record = asRecord(item);
    return record?.type === itemType && (actionType === undefined || asRecord(record.action)?.type === actionType);
  }).length;
}

/**
 * Usage of a Responses API response object. Hosted tools are billed per call: a web search per `search` action
 * (opening or searching within a page is free), counted by the response itself in `tool_usage` where it has one, and
 * every file search call.
 */
function responsesUsage(response: Record<string, unknown> | undefined): RawUsage | undefined {
  const usage = asRecord(response?.usage);
  if (usage === undefined) return undefined;
  const input = asRecord(usage.input_tokens_details);
  const webSearches = objectAt(response, ['tool_usage', 'web_search', 'num_requests']) ?? countItems(response?.output, 'web_search_call', 'search');
  return {
    input_tokens: usage.input_tokens,
    output_tokens: usage.output_tokens,
    total_tokens: usage.total_tokens,
    cached_tokens: input?.cached_tokens,
    cache_creation_tokens: input?.cache_write_tokens,
    reasoning_tokens: asRecord(usage.output_tokens_details)?.reasoning_tokens,
    web_search_requests: positive(webSearches),
    file_search_calls: positive(countItems(response?.output, 'file_search_call')),
    service_tier: response?.service_tier,
  };
}

/**
 * Transcriptions report tokens (gpt-4o-transcribe) or seconds (whisper-1); verbose_json carries `duration`. The
 * streamed `transcript.text.done` reports tokens without a `type`.
 */
function audioUsage(data: unknown): RawUsage | undefined {
  const body = asRecord(data);
  const usage = asRecord(body?.usage);
  if (usage?.type === 'tokens' || (usage?.type === undefined && usage?.input_tokens !== undefined)) {
    return {
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      total_tokens: usage.total_tokens,
      audio_input_tokens: asRecord(usage.input_token_details)?.audio_tokens,
    };
  }
  const seconds = usage?.type === 'duration' ? usage.seconds : body?.duration;
  return seconds === undefined ? undefined : { duration_seconds: seconds };
}

/**
 * gpt-image usage. Cached input is priced per modality, so it is read from the split the SDK declares for it
 * (`cached_tokens_details`).
 */
function imagesUsage(raw: unknown, imageCount: number | undefined): RawUsage | undefined {
  const usage = asRecord(raw);
  if (usage === undefined) return imageCount === undefined ? undefined : { image_count: imageCount };
  const input = asRecord(usage.input_tokens_details);
  const cached = asRecord(usage.cached_tokens_details);
  return {
    input_tokens: usage.input_tokens,
    output_tokens: usage.output_tokens,
    total_tokens: usage.total_tokens,
    input_text_tokens: input?.text_tokens,
    cached_input_text_tokens: cached?.cached_text_tokens ?? input?.cached_tokens,
    input_image_tokens: input?.image_tokens,
    cached_input_image_tokens: cached?.cached_image_tokens,
    output_image_tokens: usage.output_tokens,
    image_count: imageCount,
  };
}

/**
 * What a per-image price (DALL-E) depends on and the response does not repeat: the requested `size` and whether the
 * images were asked for at quality `hd`.
 */
export function requestedImages(request: unknown, imageCount: unknown): RawUsage {
  const params = asRecord(request);
  const size = /^(\d+)x(\d+)$/.exec(stringField(params, 'size') ?? '');
  return {
    image_width: size === null ? undefined : Number(size[1]),
    image_height: size === null ? undefined : Number(size[2]),
    hd_image_count: params?.quality === 'hd' ? imageCount : undefined,
  };
}

export function codePointCount(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0xdc00 || code > 0xdfff) count++;
  }
  return count;
}

const nonEmpty = (value: string | undefined): string | undefined => (value === '' ? undefined : value);

const usd = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined);

/**
 * What a gateway says of the call, beside its usage: OpenRouter's `usage.cost` (what it charged; with a key of the
 * caller's own, `is_byok`, the upstream provider charged `cost_details.upstream_inference_cost` on top) and the provider
 * it routed to.
 */
function readGateway(facts: ResponseFacts, body: Record<string, unknown> | undefined): ResponseFacts {
  const usage = asRecord(body?.usage);
  const charged = usd(usage?.cost);
  if (charged !== undefined) {
    const upstream = usage?.is_byok === true ? (usd(asRecord(usage.cost_details)?.upstream_inference_cost) ?? 0) : 0;
    facts.reportedCostUsd = charged + upstream;
  }
  const provider = stringField(body, 'provider');
  if (provider !== undefined && provider !== '') facts.upstreamProvider = provider;
  return facts;
}

/** The identity fields every OpenAI response object carries. */
export function identity(body: Record<string, unknown> | undefined): ResponseFacts {
  return { model: nonEmpty(stringField(body, 'model')), responseId: nonEmpty(stringField(body, 'id')) };
}

export function withUsage(facts: ResponseFacts, usage: RawUsage | undefined): ResponseFacts {
  facts.usage = usage;
  return facts;
}

/** A stream's identity is its first non-empty one: Azure's first chunk (content filters) has an empty id and model. */
export function adoptIdentity(facts: ResponseFacts, body: Record<string, unknown> | undefined): void {
  // Read per chunk until found: after the first chunk, nothing to do.
  facts.model ??= nonEmpty(stringField(body, 'model'));
  facts.responseId ??= nonEmpty(stringField(body, 'id'));
}

// ---- stream items --------------------------------------------------------------------------------------------------

/**
 * V8 before 12 (Node 20) deletes the property an object got last by going back to its previous shape; from 12 on
 * (Node 22, 24) a delete leaves the object slow for whoever reads it next. `usage` is the last key of every chunk.
 */
const DELETE_KEEPS_SHAPE = Number(process.versions.v8.split('.')[0]) < 12;

/**
 * The chunk as it would have come without `include_usage`: without its `usage` key, deleted in place where that keeps
 * the chunk fast, else a copy (on Node 24 a delete costs the stream a fifth of its time).
 */
function withoutUsage(chunk: Record<string, unknown>): Record<string, unknown> {
  if (DELETE_KEEPS_SHAPE) {
    delete chunk.usage;
    return chunk;
  }
  const { usage: _usage, ...rest } = chunk;
  return rest;
}

/** Chat and legacy completion chunks: usage arrives on its own chunk (`choices: []`) just before [DONE]. */
function readCompletionChunk(item: unknown, facts: ResponseFacts, hideInjected: boolean): boolean | object {
  const chunk = asRecord(item);
  if (chunk === undefined) return false;
  adoptIdentity(facts, chunk);
  const usage = chunk.usage;
  if (usage === undefined || usage === null) return hideInjected && usage === null ? withoutUsage(chunk) : false;
  facts.usage = chatUsage(chunk);
  readGateway(facts, chunk);
  facts.complete = true;
  if (!hideInjected) return false;
  const choices = chunk.choices;
  if (Array.isArray(choices) && choices.length === 0) return true;
  return withoutUsage(chunk);
}

const RESPONSE_FINAL_EVENTS = new Set(['response.completed', 'response.incomplete', 'response.failed']);

function readResponsesEvent(item: unknown, facts: ResponseFacts): boolean {
  const event = asRecord(item);
  const type = event?.type;
  if (type === 'response.created' || RESPONSE_FINAL_EVENTS.has(type as string)) {
    const response = asRecord(event?.response);
    adoptIdentity(facts, response);
    if (RESPONSE_FINAL_EVENTS.has(type as string)) {
      facts.usage = responsesUsage(response) ?? facts.usage;
      readGateway(facts, response);
      facts.complete = true;
    }
  }
  return false;
}

function readTranscriptionEvent(item: unknown, facts: ResponseFacts): boolean {
  const event = asRecord(item);
  if (event?.type === 'transcript.text.done') {
    facts.usage = audioUsage(event);
    facts.complete = true;
  }
  return false;
}

function readImageEvent(item: unknown, facts: ResponseFacts): boolean {
  const event = asRecord(item);
  const type = event?.type;
  if (type === 'image_generation.completed' || type === 'image_edit.completed') {
    const done = ((facts.usage?.image_count as number | undefined) ?? 0) + 1;
    facts.usage = imagesUsage(event?.usage, done);
    facts.complete = true;
  }
  return false;
}

// ---- the hook table ------------------------------------------------------------------------------------------------

const chatCompletions: HookTarget = {
  endpoint: 'chat.completions',
  classPath: ['Chat', 'Completions'],
  clientPath: ['chat', 'completions'],
  method: 'create',
  path: '/chat/completions',
  readRequest: readParams,
  outputCap: [['max_completion_tokens'], ['max_tokens']],
  completions: [['n']],
  prepare: requestStreamUsage,
  readResponse: (data) => readGateway(withUsage(identity(asRecord(data)), chatUsage(asRecord(data))), asRecord(data)),
  readStreamItem: readCompletionChunk,
};

/** A legacy completion with a `suffix` fills in the middle (DeepSeek's beta FIM, gpt-3.5-turbo-instruct's insert). */
const completionEndpoint = (args: readonly unknown[]): string => (typeof asRecord(args[0])?.suffix === 'string' ? 'fim.completions' : 'completions');

const targets: HookTarget[] = [
  chatCompletions,
  // Legacy completions stop at 16 tokens when the request sets no max_tokens.
  {
    ...chatCompletions,
    endpoint: 'completions',
    endpointOf: completionEndpoint,
    classPath: ['Completions'],
    clientPath: ['completions'],
    path: '/completions',
    outputCap: [['max_tokens']],
    defaultOutputCap: 16,
    completions: [['n'], ['best_of']],
  },
  {
    endpoint: 'responses',
    classPath: ['Responses'],
    clientPath: ['responses'],
    method: 'create',
    path: '/responses',
    readRequest: readParams,
    outputCap: [['max_output_tokens']],
    readResponse: (data) => readGateway(withUsage(identity(asRecord(data)), responsesUsage(asRecord(data))), asRecord(data)),
    readStreamItem: readResponsesEvent,
  },
  {
    endpoint: 'embeddings',
    classPath: ['Embeddings'],
    clientPath: ['embeddings'],
    method: 'create',
    path: '/embeddings',
    readRequest: readParams,
    readResponse: (data) => {
      const usage = asRecord(asRecord(data)?.usage);
      const facts: ResponseFacts = {
        model: stringField(data, 'model'),
        usage: usage && { input_tokens: usage.prompt_tokens, output_tokens: 0, total_tokens: usage.total_tokens },
      };
      return readGateway(facts, asRecord(data));
    },
  },
  ...(['transcriptions', 'translations'] as const).map(
    (kind): HookTarget => ({
      endpoint: `audio.${kind}`,
      classPath: ['Audio', kind === 'transcriptions' ? 'Transcriptions' : 'Translations'],
      clientPath: ['audio', kind],
      method: 'create',
      path: `/audio/${kind}`,
      readRequest: readParams,
      readResponse: (data) => ({ usage: audioUsage(data) }),
      readStreamItem: readTranscriptionEvent,
    }),
  ),
  {
    endpoint: 'audio.speech',
    classPath: ['Audio', 'Speech'],
    clientPath: ['audio', 'speech'],
    method: 'create',
    path: '/audio/speech',
    readRequest: readParams,
    readResponse: (_data, args) => {
      const input = asRecord(args[0])?.input;
      return { usage: typeof input === 'string' ? { character_count: codePointCount(input) } : undefined };
    },
  },
  ...(['generate', 'edit'] as const).map(
    (method): HookTarget => ({
      endpoint: `images.${method}`,
      classPath: ['Images'],
      clientPath: ['images'],
      method,
      path: method === 'generate' ? '/images/generations' : '/images/edits',
      readRequest: readParams,
      completions: [['n']],
      readResponse: (data, args) => {
        const body = asRecord(data);
        const usage = imagesUsage(body?.usage, Array.isArray(body?.data) ? body.data.length : undefined);
        return { usage: usage && { ...usage, ...requestedImages(args[0], usage.image_count) } };
      },
      readStreamItem: readImageEvent,
    }),
  ),
];

export const openaiPatch: ProviderPatch = {
  name: 'openai',
  provider: 'openai',
  packageName: 'openai',
  // client.* defines OpenAI from openai 5; openai 4 defines it in index.* (from 5 on, index.* re-exports it).
  classFiles: /^(client|index)\.(js|mjs)$/,
  style: 'api-promise',
  requestMethod: 'methodRequest',
  rawRequestMethod: 'request',
  bodyEncoder: 'buildBody',
  // Uploads, moderation, and creating or changing stored objects (assistants, threads and their messages, vector
  // stores, conversations, evals) cost nothing per request; nor does counting input tokens or cancelling.
  requestRoutes: {
    freePosts:
      /^\/(files|uploads(\/.*)?|moderations|assistants(\/[^/]+)?|threads(\/[^/]+)?(\/messages(\/[^/]+)?)?|vector_stores(\/.*)?|conversations(\/.*)?|chat\/completions\/[^/]+|responses\/input_tokens|evals(\/[^/]+)?|organization\/.*|.*\/cancel)$/,
  },
  requestIdHeader: 'x-request-id',
  baseUrl: clientBaseUrl,
  // AzureOpenAI (the one client with an api-version) is Azure whatever its domain.
  clientProvider: (resource) => (stringField(objectAt(resource, ['_client']), 'apiVersion') === undefined ? undefined : 'azure'),
  classifyInput,
  root: (moduleExports) => {
    const ns = moduleExports as Record<string, unknown>;
    return ns.OpenAI ?? ns.default ?? moduleExports;
  },
  isClient: (client) =>
    typeof objectAt(client, ['chat', 'completions', 'create']) === 'function' &&
    typeof objectAt(client, ['embeddings', 'create']) === 'function',
  targets,
};
