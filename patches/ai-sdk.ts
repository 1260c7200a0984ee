import type { RawUsage } from '../src/event.js';
import type { ProviderId } from '../src/providers/provider-id.js';
import type { InputPart } from '../src/limits/estimate.js';
import { codePointCount, requestedImages } from './openai.js';
import { asRecord, objectAt, stringField, type HookTarget, type ProviderPatch, type RequestFacts, type ResponseFacts } from './provider.js';

// The Vercel AI SDK's provider packages (@ai-sdk/openai, ...) POST with fetch themselves: the official SDKs never see
// their calls. Every model class implements `doGenerate` / `doStream` (language models: LanguageModelV2 in ai 5, V3 in
// ai 6, V4 in ai 7) or `doEmbed` (embedding models); generateText, streamText, agents and frameworks that call models
// directly (Mastra) all go through them, one call per HTTP request. The classes are not exported from the packages'
// main entry, so each loaded build's are reached through its provider factory: a provider made with placeholder
// settings makes a model of each kind (no request is sent; models are lazy), whose prototype is its class's.

/** One provider package: its factory, and the price data's id of the provider it reaches by default. */
interface AiSdkPackage {
  packageName: string;
  factory: string;
  provider: ProviderId;
}

const PACKAGES: readonly AiSdkPackage[] = [
  { packageName: '@ai-sdk/openai', factory: 'createOpenAI', provider: 'openai' },
  { packageName: '@ai-sdk/anthropic', factory: 'createAnthropic', provider: 'anthropic' },
  { packageName: '@ai-sdk/google', factory: 'createGoogleGenerativeAI', provider: 'google' },
  { packageName: '@ai-sdk/amazon-bedrock', factory: 'createAmazonBedrock', provider: 'aws' },
  { packageName: '@ai-sdk/gateway', factory: 'createGateway', provider: 'vercel' },
  { packageName: '@ai-sdk/azure', factory: 'createAzure', provider: 'azure' },
  { packageName: '@ai-sdk/groq', factory: 'createGroq', provider: 'groq' },
  { packageName: '@ai-sdk/mistral', factory: 'createMistral', provider: 'mistral' },
  { packageName: '@ai-sdk/xai', factory: 'createXai', provider: 'x-ai' },
  { packageName: '@ai-sdk/deepseek', factory: 'createDeepSeek', provider: 'deepseek' },
  // Last: `instrument(model)` takes the last patch that accepts a model, and a model of a provider built on this
  // package (DeepSeek's, Together's, a company's own) is OpenAI-shaped by default.
  { packageName: '@ai-sdk/openai-compatible', factory: 'createOpenAICompatible', provider: 'openai' },
];

/** The provider methods that make a model from an id, and nothing else: other methods may send requests. */
const MODEL_MAKERS = [
  'languageModel', 'chat', 'responses', 'completion', 'messages', 'chatModel', 'completionModel',
  'embedding', 'embeddingModel', 'textEmbeddingModel', 'image', 'imageModel', 'transcription', 'transcriptionModel', 'speech', 'speechModel',
];

/** Placeholder settings under which every factory makes a provider without reading the environment or sending anything. */
const PLACEHOLDER_SETTINGS = { apiKey: 'placeholder', name: 'placeholder', baseURL: 'http://127.0.0.1/placeholder', region: 'us-east-1', accessKeyId: 'placeholder', secretAccessKey: 'placeholder' };

/** Model classes by the methods they have: language, image, transcription and speech models all `doGenerate`. */
interface ModelClasses {
  generating: Function[];
  streaming: Function[];
  embedding: Function[];
}

const classesByExports = new WeakMap<object, ModelClasses>();

function addModelClass(classes: ModelClasses, modelClass: unknown): void {
  if (typeof modelClass !== 'function' || modelClass === Object) return;
  const prototype = modelClass.prototype as Record<string, unknown> | undefined;
  const add = (list: Function[], method: string): void => {
    if (typeof prototype?.[method] === 'function' && !list.includes(modelClass)) list.push(modelClass);
  };
  add(classes.generating, 'doGenerate');
  add(classes.streaming, 'doStream');
  add(classes.embedding, 'doEmbed');
}

/**
 * The model classes of one loaded build: those its provider factory makes (the main entry exports none), and those it
 * exports itself (the `/internal` entry, whose classes Azure, Vertex and Bedrock's Anthropic models are made of).
 */
function modelClasses(moduleExports: unknown, factoryName: string): ModelClasses | undefined {
  if (moduleExports === null || (typeof moduleExports !== 'object' && typeof moduleExports !== 'function')) return undefined;
  const known = classesByExports.get(moduleExports);
  if (known !== undefined) return known;
  const classes: ModelClasses = { generating: [], streaming: [], embedding: [] };
  for (const exported of Object.values(moduleExports as Record<string, unknown>)) addModelClass(classes, exported);
  const factory = objectAt(moduleExports, [factoryName]);
  let provider: unknown;
  try {
    provider = typeof factory === 'function' ? factory(PLACEHOLDER_SETTINGS) : undefined;
  } catch {
    provider = undefined;
  }
  for (const maker of MODEL_MAKERS) {
    const make = objectAt(provider, [maker]);
    if (typeof make !== 'function') continue;
    try {
      addModelClass(classes, (Object.getPrototypeOf(make.call(provider, 'placeholder-model')) as { constructor?: unknown } | null)?.constructor);
    } catch {
      // A model this provider cannot make with placeholder settings.
    }
  }
  classesByExports.set(moduleExports, classes);
  return classes;
}

// ---- who served the call -------------------------------------------------------------------------------------------

/** The AI SDK's provider names (the part of `model.provider` before the first dot) that are not the price data's ids. */
const PROVIDER_IDS: Readonly<Record<string, ProviderId>> = {
  'amazon-bedrock': 'aws',
  bedrock: 'aws',
  'google.vertex': 'google',
  xai: 'x-ai',
  togetherai: 'together',
};

/** The providers the AI SDK names by their ProviderId (deepinfra's is the agent's own: the price data has none). */
const SAME_IDS: ReadonlySet<string> = new Set<ProviderId>(['openai', 'anthropic', 'google', 'azure', 'groq', 'mistral', 'deepseek', 'fireworks', 'perplexity', 'cerebras', 'deepinfra', 'cohere']);

/** The ProviderId of a provider as the AI SDK names it, if it has one. */
function libraryId(name: string): ProviderId | undefined {
  return PROVIDER_IDS[name] ?? (SAME_IDS.has(name) ? (name as ProviderId) : undefined);
}

function providerOf(model: unknown): ProviderId | undefined {
  const name = stringField(model, 'provider');
  if (name === undefined) return undefined;
  if (name === 'gateway') return gatewayUpstream(model);
  return libraryId(name.startsWith('google.vertex') ? 'google.vertex' : name.split('.', 1)[0]!);
}

/** A Vercel AI Gateway model (`openai/gpt-4o`) is served by the provider its id names, at that provider's list price. */
function gatewayUpstream(model: unknown): ProviderId | undefined {
  const id = stringField(model, 'modelId');
  const slash = id?.indexOf('/') ?? -1;
  if (id === undefined || slash <= 0) return undefined;
  return libraryId(id.slice(0, slash));
}

const baseUrls = new WeakMap<object, string | undefined>();

/** Where a model's requests go: its settings' `baseURL`, or the URL its `url` builder makes of an empty path. */
function baseUrlOf(model: unknown): string | undefined {
  if (model === null || typeof model !== 'object') return undefined;
  if (baseUrls.has(model)) return baseUrls.get(model);
  const config = asRecord((model as Record<string, unknown>).config);
  let url: unknown = config?.baseURL;
  try {
    if (typeof url !== 'string' && typeof config?.url === 'function') url = config.url({ path: '', modelId: stringField(model, 'modelId') ?? '' });
    if (typeof url !== 'string' && typeof config?.baseUrl === 'function') url = config.baseUrl();
  } catch {
    url = undefined;
  }
  const found = typeof url === 'string' ? url : undefined;
  baseUrls.set(model, found);
  return found;
}

/** Providers whose `provider` names no API: the one they speak. */
const ENDPOINTS: Readonly<Record<string, string>> = { 'amazon-bedrock': 'converse' };

/** The API a model speaks, from its `provider` (`openai.chat` → `chat`, `anthropic.messages` → `messages`). */
function endpointOf(model: unknown, fallback: string): string {
  const name = stringField(model, 'provider');
  if (name === undefined) return fallback;
  const dot = name.indexOf('.');
  return dot === -1 ? (ENDPOINTS[name] ?? fallback) : name.slice(dot + 1);
}

// ---- reading usage -------------------------------------------------------------------------------------------------

const number = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

/** Cache writes the V2 providers report only in their metadata (Anthropic, Bedrock). */
function v2CacheWrites(metadata: Record<string, unknown> | undefined): number | undefined {
  return number(asRecord(metadata?.anthropic)?.cacheCreationInputTokens) ?? number(asRecord(asRecord(metadata?.bedrock)?.usage)?.cacheWriteInputTokens);
}

/**
 * DeepSeek's cache hits (`prompt_cache_hit_tokens`), which @ai-sdk/openai-compatible does not read (0 or no cache
 * reads), from the provider's own usage: V3's `raw`, or (V2) the body of a response that was not streamed.
 */
function deepSeekCacheHits(usage: Record<string, unknown>, providerUsage: unknown): number | undefined {
  return number(asRecord(usage.raw ?? providerUsage)?.prompt_cache_hit_tokens);
}

/** The cache reads the AI SDK reports, or DeepSeek's own count where it reports none. */
function cacheReads(reported: unknown, cacheHits: number | undefined): unknown {
  return number(reported) === undefined || reported === 0 ? (cacheHits ?? reported) : reported;
}

/**
 * The AI SDK's usage, as the event counts it (input including the cache pools). V3/V4 (ai 6, 7) split it by pool,
 * normalised across providers. V2 (ai 5) is flat and keeps each provider's own convention: Anthropic's and Bedrock's
 * `inputTokens` exclude cache reads (`cachedInputTokens`) and writes (in their provider metadata), the others'
 * include them.
 */
function modelUsage(raw: unknown, metadata: Record<string, unknown> | undefined, model: unknown, providerUsage?: unknown): RawUsage | undefined {
  const usage = asRecord(raw);
  if (usage === undefined) return undefined;
  const input = asRecord(usage.inputTokens);
  const output = asRecord(usage.outputTokens);
  const cacheHits = deepSeekCacheHits(usage, providerUsage);
  if (input !== undefined || output !== undefined) {
    // No counts at all: the response never said (a stream that failed part-way, a host that sends no usage).
    if (input?.total === undefined && output?.total === undefined) return undefined;
    return {
      input_tokens: input?.total,
      output_tokens: output?.total ?? 0,
      cached_tokens: cacheReads(input?.cacheRead, cacheHits),
      cache_creation_tokens: input?.cacheWrite,
      reasoning_tokens: output?.reasoning,
    };
  }
  if (usage.inputTokens === undefined && usage.outputTokens === undefined) return undefined;
  const cached = number(cacheReads(usage.cachedInputTokens, cacheHits));
  const writes = v2CacheWrites(metadata);
  const excludesCache = /^(anthropic|amazon-bedrock|bedrock)/.test(stringField(model, 'provider') ?? '');
  const inputTokens = number(usage.inputTokens);
  return {
    input_tokens: excludesCache && inputTokens !== undefined ? inputTokens + (cached ?? 0) + (writes ?? 0) : usage.inputTokens,
    output_tokens: usage.outputTokens ?? 0,
    total_tokens: excludesCache ? undefined : usage.totalTokens,
    cached_tokens: cached,
    cache_creation_tokens: writes,
    reasoning_tokens: usage.reasoningTokens,
  };
}

/** What the Vercel AI Gateway says it charged (`providerMetadata.gateway.cost`, USD). */
function gatewayCost(metadata: Record<string, unknown> | undefined): number | undefined {
  const cost = asRecord(metadata?.gateway)?.cost;
  const value = typeof cost === 'string' && cost !== '' ? Number(cost) : cost;
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function finishFacts(facts: ResponseFacts, usage: unknown, metadataValue: unknown, model: unknown, providerUsage?: unknown): ResponseFacts {
  const metadata = asRecord(metadataValue);
  facts.usage = modelUsage(usage, metadata, model, providerUsage);
  const reported = gatewayCost(metadata);
  if (reported !== undefined) facts.reportedCostUsd = reported;
  return facts;
}

function readRequest(stream: boolean): (args: readonly unknown[], model?: unknown) => RequestFacts {
  return (_args, model) => ({ model: stringField(model, 'modelId'), stream });
}

const HEADER_IDS = ['x-request-id', 'request-id', 'x-amzn-requestid'];

/** The request id among the response headers the AI SDK hands back (a plain object). */
function requestIdOf(result: unknown): string | undefined {
  const headers = asRecord(objectAt(result, ['response', 'headers']));
  if (headers === undefined) return undefined;
  for (const name of HEADER_IDS) {
    const id = headers[name];
    if (typeof id === 'string' && id !== '') return id;
  }
  return undefined;
}

/** Stream parts: `response-metadata` names the response and model; `finish` carries the call's usage. */
function streamPartReader(model: unknown): (item: unknown, facts: ResponseFacts) => boolean {
  return (item, facts) => {
    const part = asRecord(item);
    const type = part?.type;
    if (type === 'response-metadata') {
      facts.responseId ??= stringField(part, 'id');
      facts.model ??= stringField(part, 'modelId');
    } else if (type === 'finish') {
      finishFacts(facts, part!.usage, part!.providerMetadata, model);
      facts.complete = true;
    } else if (type === 'error') {
      // The provider's error, reported inside the stream (the AI SDK never throws it).
      facts.error = part!.error;
    }
    return false;
  };
}

/** Media in an AI SDK prompt are `file` parts (and V2 `image` parts), by media type. */
function classifyInput(part: Record<string, unknown>): InputPart {
  if (part.type === 'image') return 'image';
  if (part.type !== 'file') return undefined;
  const mediaType = stringField(part, 'mediaType') ?? '';
  if (mediaType.startsWith('image/')) return 'image';
  if (mediaType.startsWith('audio/')) return 'audio';
  if (mediaType.startsWith('video/')) return 'video';
  return 'document';
}

// ---- the hook table ------------------------------------------------------------------------------------------------

/**
 * What an image, transcription or speech model's `doGenerate` billed: image tokens (gpt-image) or images of the
 * requested size (DALL-E), seconds of audio, characters of text.
 */
function mediaUsage(result: Record<string, unknown>, options: unknown): RawUsage | undefined {
  if (Array.isArray(result.images)) {
    const usage = asRecord(result.usage);
    const count = result.images.length;
    const tokens = usage === undefined ? {} : { input_tokens: usage.inputTokens, input_text_tokens: usage.inputTokens, output_tokens: usage.outputTokens, output_image_tokens: usage.outputTokens };
    return { ...tokens, image_count: count, ...requestedImages(options, count) };
  }
  if (typeof result.text === 'string' && Array.isArray(result.segments)) {
    return result.durationInSeconds === undefined ? undefined : { duration_seconds: result.durationInSeconds };
  }
  const text = asRecord(options)?.text;
  if (result.audio !== undefined && typeof text === 'string') return { character_count: codePointCount(text) };
  return undefined;
}

const generate: HookTarget = {
  endpoint: 'generate',
  classPath: ['generating'],
  clientPath: [],
  method: 'doGenerate',
  readRequest: readRequest(false),
  endpointOf: (_args, model) => endpointOf(model, 'generate'),
  outputCap: [['maxOutputTokens']],
  // The result says which kind of model made it: a language model's has `content`.
  readResponse: (data, args, model) => {
    const result = asRecord(data);
    const response = asRecord(result?.response);
    const facts: ResponseFacts = { model: stringField(response, 'modelId'), responseId: stringField(response, 'id') };
    if (result !== undefined && !Array.isArray(result.content)) {
      facts.usage = mediaUsage(result, args[0]);
      return facts;
    }
    return finishFacts(facts, result?.usage, result?.providerMetadata, model, objectAt(response, ['body', 'usage']));
  },
  requestIdOf,
};

const stream: HookTarget = {
  ...generate,
  classPath: ['streaming'],
  method: 'doStream',
  readRequest: readRequest(true),
  streamAt: 'stream',
  streamReaderFor: streamPartReader,
};

/** The language-model hooks, for metering one model through a middleware (see src/ai-sdk-middleware.ts). */
export const LANGUAGE_MODEL_TARGETS = { generate, stream };

function targetsFor(): HookTarget[] {
  return [
    generate,
    stream,
    {
      endpoint: 'embeddings',
      classPath: ['embedding'],
      clientPath: [],
      method: 'doEmbed',
      readRequest: readRequest(false),
      readResponse: (data) => ({ usage: embeddingUsage(data) }),
      requestIdOf,
    },
  ];
}

function embeddingUsage(data: unknown): RawUsage | undefined {
  const tokens = objectAt(data, ['usage', 'tokens']);
  return tokens === undefined ? undefined : { input_tokens: tokens, output_tokens: 0 };
}

export function isAiSdkModel(value: unknown): boolean {
  const model = asRecord(value);
  return (
    typeof model?.specificationVersion === 'string' &&
    typeof model.modelId === 'string' &&
    (typeof model.doGenerate === 'function' || typeof model.doEmbed === 'function')
  );
}

function aiSdkPatch(pkg: AiSdkPackage): ProviderPatch {
  return {
    name: pkg.packageName.replace('@ai-sdk/', 'ai-sdk-'),
    provider: pkg.provider,
    packageName: pkg.packageName,
    // Each build's entry bundles its classes: the main entry in CJS and ESM (ai 5's dual packages; ESM only since).
    classFiles: /^dist\/(internal\/)?index\.(js|mjs|cjs)$/,
    style: 'promise',
    classifyInput,
    root: (moduleExports) => modelClasses(moduleExports, pkg.factory),
    providerOf,
    baseUrl: baseUrlOf,
    isClient: isAiSdkModel,
    targets: targetsFor(),
  };
}

export const AI_SDK_PATCHES: readonly ProviderPatch[] = PACKAGES.map(aiSdkPatch);
