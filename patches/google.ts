import type { RawUsage } from '../src/event.js';
import { unpricedCall } from './unpriced.js';
import { mediaKindOf, type InputPart } from '../src/limits/estimate.js';
import { asRecord, objectAt, stringField, type HookTarget, type ProviderPatch, type ResponseFacts } from './provider.js';

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** The tokens of one modality (`AUDIO`, `IMAGE`, ...) in `*TokensDetails` lists; undefined when none lists it. */
function modalityTokens(modality: string, ...lists: unknown[]): number | undefined {
  let tokens: number | undefined;
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const detail of list) {
      const entry = asRecord(detail);
      if (entry?.modality === modality) tokens = (tokens ?? 0) + count(entry.tokenCount);
    }
  }
  return tokens;
}

/**
 * `promptTokenCount` includes cached tokens; thinking tokens are billed as output but are NOT in
 * `candidatesTokenCount`, and tool-use prompt tokens are billed as input but are not in `promptTokenCount`. The
 * `*TokensDetails` lists split each count by modality (a modality priced apart, such as audio input or image output,
 * is a part of the count, never an addition); `cacheTokensDetails` splits the cached tokens.
 * A usageMetadata without counts (Vertex sends `{trafficType}` on every chunk of a stream) is no usage. Vertex's
 * `trafficType` is the service tier the call was billed at (ON_DEMAND_FLEX, ON_DEMAND_PRIORITY, ...).
 */
function geminiUsage(raw: unknown): RawUsage | undefined {
  const usage = asRecord(raw);
  if (usage === undefined || (usage.promptTokenCount === undefined && usage.candidatesTokenCount === undefined && usage.totalTokenCount === undefined)) {
    return undefined;
  }
  const thoughts = usage.thoughtsTokenCount;
  const input = [usage.promptTokensDetails, usage.toolUsePromptTokensDetails];
  return {
    input_tokens: count(usage.promptTokenCount) + count(usage.toolUsePromptTokenCount),
    output_tokens: count(usage.candidatesTokenCount) + count(thoughts),
    total_tokens: usage.totalTokenCount,
    cached_tokens: usage.cachedContentTokenCount,
    reasoning_tokens: thoughts,
    audio_input_tokens: modalityTokens('AUDIO', ...input),
    input_image_tokens: modalityTokens('IMAGE', ...input),
    input_video_tokens: modalityTokens('VIDEO', ...input),
    cached_input_audio_tokens: modalityTokens('AUDIO', usage.cacheTokensDetails),
    audio_output_tokens: modalityTokens('AUDIO', usage.candidatesTokensDetails),
    output_image_tokens: modalityTokens('IMAGE', usage.candidatesTokensDetails),
    service_tier: usage.trafficType,
  };
}

function responseFacts(data: unknown): ResponseFacts {
  const response = asRecord(data);
  return {
    model: stringField(response, 'modelVersion'),
    responseId: stringField(response, 'responseId'),
    usage: geminiUsage(response?.usageMetadata),
  };
}

/** Each chunk's usageMetadata is the running total: the last one wins, never a sum. */
function readStreamChunk(item: unknown, facts: ResponseFacts): boolean {
  const chunk = responseFacts(item);
  facts.model ??= chunk.model;
  facts.responseId ??= chunk.responseId;
  if (chunk.usage !== undefined) facts.usage = chunk.usage;
  const candidates = asRecord(item)?.candidates;
  if (Array.isArray(candidates) && candidates.some((c) => asRecord(c)?.finishReason !== undefined)) facts.complete = true;
  return false;
}

/**
 * The Gemini API reports no usage for embeddings; Vertex AI reports a token count per embedding and, for the models it
 * bills per character (text-embedding-005), `metadata.billableCharacterCount` for the request.
 */
function embeddingFacts(data: unknown): ResponseFacts {
  const response = asRecord(data);
  const embeddings = response?.embeddings;
  if (!Array.isArray(embeddings)) return {};
  let tokens: number | undefined;
  for (const embedding of embeddings) {
    const tokenCount = asRecord(asRecord(embedding)?.statistics)?.tokenCount;
    if (typeof tokenCount === 'number') tokens = (tokens ?? 0) + tokenCount;
  }
  const characters = asRecord(response?.metadata)?.billableCharacterCount;
  if (tokens === undefined && characters === undefined) return {};
  return { usage: { input_tokens: tokens ?? 0, output_tokens: 0, total_tokens: tokens ?? 0, character_count: characters } };
}

const requestedModel = (args: readonly unknown[]): string | undefined => stringField(args[0], 'model');

/** Tools whose findings enter the model's input. */
const SERVER_TOOLS = ['googleSearch', 'googleSearchRetrieval', 'urlContext', 'codeExecution', 'fileSearch', 'retrieval', 'googleMaps'];

function classifyInput(part: Record<string, unknown>): InputPart {
  if (part.inlineData !== undefined) return mediaKindOf(asRecord(part.inlineData)?.mimeType);
  if (part.fileData !== undefined) return mediaKindOf(asRecord(part.fileData)?.mimeType);
  // A context cache: its tokens are billed on every call that uses it.
  if (typeof part.cachedContent === 'string') return 'unbounded';
  if (SERVER_TOOLS.some((tool) => part[tool] !== undefined)) return 'unbounded';
  return undefined;
}

// The public generateContent / generateContentStream / embedContent are arrow functions set on each instance: a
// prototype patch of them does nothing. The *Internal prototype methods they call run once per HTTP call (each round
// of automatic function calling or continuation), which is what is billed.
const generateContent: HookTarget = {
  endpoint: 'generateContent',
  classPath: ['Models'],
  clientPath: ['models'],
  method: 'generateContentInternal',
  readRequest: (args) => ({ model: requestedModel(args), stream: false }),
  outputCap: [['config', 'maxOutputTokens']],
  completions: [['config', 'candidateCount']],
  readResponse: responseFacts,
};

export const googlePatch: ProviderPatch = {
  name: 'google',
  provider: 'google',
  packageName: '@google/genai',
  classFiles: /^dist\/(node\/|web\/)?index\.(cjs|mjs)$/,
  style: 'promise',
  classifyInput,
  // Where its requests go, Gemini API or Vertex AI (both the price data's `google`), or a proxy.
  baseUrl: (resource) => stringField(objectAt(resource, ['apiClient', 'clientOptions', 'httpOptions']), 'baseUrl'),
  root: (moduleExports) => moduleExports,
  guardedMethods: [
    {
      classPath: ['Models'],
      fromClient: (client) => objectAt(client, ['models']),
      names: ['generateContent', 'generateContentStream', 'embedContent', 'generateImages', 'editImage', 'upscaleImage', 'generateVideos'],
    },
    { classPath: ['Batches'], fromClient: (client) => objectAt(client, ['batches']), names: ['create', 'createEmbeddings'] },
    // A chat made for the purpose (no request is sent) is the way to its class from a client.
    { classPath: ['Chat'], fromClient: (client) => (client as { chats: { create(p: object): unknown } }).chats.create({ model: '' }), names: ['sendMessage', 'sendMessageStream'] },
  ],
  isClient: (client) => typeof objectAt(client, ['models', 'generateContentInternal']) === 'function',
  targets: [
    generateContent,
    {
      ...generateContent,
      endpoint: 'streamGenerateContent',
      method: 'generateContentStreamInternal',
      readRequest: (args) => ({ model: requestedModel(args), stream: true }),
      readStreamItem: readStreamChunk,
    },
    ...['processAfcStream', 'generateContentStreamWithContinuation'].map(
      (method): HookTarget => ({ ...generateContent, method, bindsCallerContext: true }),
    ),
    // Batches, images and videos: billed at a price the agent cannot know when they are sent.
    ...(
      [
        ['batches.create', 'Batches', 'batches', 'createInternal'],
        ['batches.createEmbeddings', 'Batches', 'batches', 'createEmbeddingsInternal'],
        ['generateImages', 'Models', 'models', 'generateImagesInternal'],
        ['editImage', 'Models', 'models', 'editImageInternal'],
        ['upscaleImage', 'Models', 'models', 'upscaleImageInternal'],
        ['generateVideos', 'Models', 'models', 'generateVideosInternal'],
      ] as const
    ).map(([endpoint, resourceClass, resource, method]): HookTarget => ({ endpoint, classPath: [resourceClass], clientPath: [resource], method, ...unpricedCall })),
    {
      ...generateContent,
      endpoint: 'embedContent',
      method: 'embedContentInternal',
      outputCap: undefined,
      completions: undefined,
      readResponse: embeddingFacts,
    },
  ],
};
