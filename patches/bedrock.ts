import { Buffer } from 'node:buffer';
import type { RawUsage } from '../src/event.js';
import type { InputPart } from '../src/limits/estimate.js';
import { asRecord, objectAt, stringField, type HookTarget, type ProviderPatch, type RequestFacts, type ResponseFacts } from './provider.js';

/**
 * Amazon Bedrock Runtime (@aws-sdk/client-bedrock-runtime, v3). Every operation goes through one method, the client's
 * `send(command, options?, callback?)`, inherited from smithy's `Client`, which every AWS client shares: the agent
 * defines an own `BedrockRuntimeClient.prototype.send` around it (never smithy's, which would meter every AWS client)
 * and picks the target by the command's operation. Converse, ConverseStream, InvokeModel and
 * InvokeModelWithResponseStream are metered; every other command (ApplyGuardrail, CountTokens, the async invokes, the
 * bidirectional stream) passes straight through.
 */

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

// ---- which command ---------------------------------------------------------------------------------------------------

/**
 * The operation a command runs ('Converse', ...). Since the schema-based builds (3.7xx+) each command carries its
 * operation schema, `[9, namespace, 'Converse', traits, input, output]`: data from the service model, which no bundler
 * renames. Older builds have no schema: their class name (`ConverseCommand`), which the SDK's own builds keep; a
 * minified bundle of such an old build is the one case left unmetered (a command of an unknown name is passed through).
 */
function operationOf(command: unknown): string | undefined {
  const schema = asRecord(command)?.schema;
  if (Array.isArray(schema) && schema[0] === 9 && typeof schema[2] === 'string') return schema[2];
  const name = (asRecord(command)?.constructor as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && name.endsWith('Command') ? name.slice(0, -'Command'.length) : undefined;
}

function inputOf(args: readonly unknown[]): Record<string, unknown> | undefined {
  return asRecord(asRecord(args[0])?.input);
}

/**
 * The model the call is billed for: the request's `modelId` as sent (a cross-region profile `us.anthropic....`, a base
 * model id, or an ARN, whose last path segment the price book reads). The response never names it; an InvokeModel body
 * names the vendor's own id (`claude-...`), which is not the Bedrock price's, so it is never taken.
 */
function readRequest(stream: boolean): (args: readonly unknown[]) => RequestFacts {
  return (args) => ({ model: stringField(inputOf(args), 'modelId'), stream });
}

const requestIdOf = (resultOrError: unknown): string | undefined => {
  const id = objectAt(resultOrError, ['$metadata', 'requestId']);
  return typeof id === 'string' && id !== '' ? id : undefined;
};

// ---- Converse usage --------------------------------------------------------------------------------------------------

/**
 * Converse `TokenUsage`: `inputTokens` EXCLUDES the tokens read from and written to the prompt cache, which are reported
 * apart (`cacheReadInputTokens`, `cacheWriteInputTokens`), and `totalTokens` = input + output + cache read + cache write.
 * So says the prompt-caching guide (https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html): its
 * Converse example reports a few `inputTokens` (the text after the cache checkpoint) beside thousands of
 * `cacheWriteInputTokens`, and a `totalTokens` that adds all of them; it is the Anthropic rule too (input_tokens beside
 * cache_read / cache_creation). Hence `inputExcludesCache` below: pricing adds the cache pools back.
 */
function converseUsage(raw: unknown): RawUsage | undefined {
  const usage = asRecord(raw);
  if (usage === undefined) return undefined;
  return {
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    total_tokens: usage.totalTokens ?? count(usage.inputTokens) + count(usage.outputTokens) + count(usage.cacheReadInputTokens) + count(usage.cacheWriteInputTokens),
    cached_tokens: usage.cacheReadInputTokens,
    cache_creation_tokens: usage.cacheWriteInputTokens,
  };
}

/** The tier the response says it was served at (`serviceTier.type`: `default`, `priority`, `flex`), as reported. */
const serviceTierOf = (value: unknown): unknown => asRecord(value)?.type;

function converseFacts(data: unknown): ResponseFacts {
  const response = asRecord(data);
  const usage = converseUsage(response?.usage);
  if (usage !== undefined) usage.service_tier = serviceTierOf(response?.serviceTier);
  return { usage };
}

/** ConverseStream: the `metadata` event (after `messageStop`) carries `{usage, metrics}`, once, at the end. */
function readConverseStreamEvent(item: unknown, facts: ResponseFacts): boolean {
  const metadata = asRecord(asRecord(item)?.metadata);
  if (metadata === undefined) return false;
  const usage = converseUsage(metadata.usage);
  if (usage !== undefined) {
    usage.service_tier = serviceTierOf(metadata.serviceTier);
    facts.usage = usage;
    facts.complete = true;
  }
  return false;
}

// ---- InvokeModel usage -----------------------------------------------------------------------------------------------

/**
 * The usage in a model's own response body, by its vendor's shape. Where a shape reports cache pools, input excludes
 * them (Anthropic and Nova alike), as Converse's does.
 */
function bodyUsage(body: Record<string, unknown>): RawUsage | undefined {
  const usage = asRecord(body.usage);
  if (usage !== undefined) {
    // Anthropic Messages.
    if (usage.input_tokens !== undefined) {
      return withCachePools(usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens);
    }
    // Amazon Nova.
    if (usage.inputTokens !== undefined) {
      return converseUsage({
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        totalTokens: usage.totalTokens,
        cacheReadInputTokens: usage.cacheReadInputTokenCount ?? usage.cacheReadInputTokens,
        cacheWriteInputTokens: usage.cacheWriteInputTokenCount ?? usage.cacheWriteInputTokens,
      });
    }
    // OpenAI-compatible bodies (gpt-oss, DeepSeek): no cache pools on Bedrock.
    if (usage.prompt_tokens !== undefined) {
      return { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens ?? 0, total_tokens: usage.total_tokens };
    }
  }
  // Meta Llama.
  if (body.prompt_token_count !== undefined) {
    return {
      input_tokens: body.prompt_token_count,
      output_tokens: body.generation_token_count ?? 0,
      total_tokens: count(body.prompt_token_count) + count(body.generation_token_count),
    };
  }
  // Amazon Titan text (a token count per result) and Titan embeddings (input only).
  if (body.inputTextTokenCount !== undefined) {
    const results = Array.isArray(body.results) ? body.results : [];
    const output = results.reduce((sum: number, result) => sum + count(asRecord(result)?.tokenCount), 0);
    return { input_tokens: body.inputTextTokenCount, output_tokens: output, total_tokens: count(body.inputTextTokenCount) + output };
  }
  // Cohere Command R: billed units.
  const billed = asRecord(asRecord(body.meta)?.billed_units);
  if (billed?.input_tokens !== undefined) {
    return { input_tokens: billed.input_tokens, output_tokens: billed.output_tokens ?? 0, total_tokens: count(billed.input_tokens) + count(billed.output_tokens) };
  }
  return undefined;
}

/**
 * The counts Bedrock adds to the last chunk of every InvokeModelWithResponseStream (and which it sends as the
 * `x-amzn-bedrock-*-token-count` headers of an InvokeModel response, which the SDK does not expose): input here
 * excludes the cache pools, as the headers and the CloudWatch metrics of the same names do.
 */
function invocationMetricsUsage(raw: unknown): RawUsage | undefined {
  const metrics = asRecord(raw);
  if (metrics === undefined) return undefined;
  return withCachePools(metrics.inputTokenCount, metrics.outputTokenCount, metrics.cacheReadInputTokenCount, metrics.cacheWriteInputTokenCount);
}

/** Usage whose input excludes the cache pools reported beside it: the total is all four. */
function withCachePools(input: unknown, output: unknown, cacheRead: unknown, cacheWrite: unknown): RawUsage {
  return { input_tokens: input, output_tokens: output, total_tokens: count(input) + count(output) + count(cacheRead) + count(cacheWrite), cached_tokens: cacheRead, cache_creation_tokens: cacheWrite };
}

const bytesView = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** JSON bytes, parsed; undefined for anything else (an image, a truncated body). The caller's bytes are not touched. */
function parseJsonBytes(bytes: unknown): Record<string, unknown> | undefined {
  if (!(bytes instanceof Uint8Array)) return undefined;
  try {
    return asRecord(JSON.parse(bytesView(bytes).toString('utf8')));
  } catch {
    return undefined;
  }
}

/** InvokeModel: the whole body is already in memory (the SDK buffers it); only a JSON one is read, once. */
function invokeModelFacts(data: unknown): ResponseFacts {
  const response = asRecord(data);
  const contentType = stringField(response, 'contentType');
  if (contentType !== undefined && !contentType.includes('json')) return {};
  const body = parseJsonBytes(response?.body);
  if (body === undefined) return {};
  const usage = invocationMetricsUsage(body['amazon-bedrock-invocationMetrics']) ?? bodyUsage(body);
  if (usage !== undefined) usage.service_tier = serviceTierOf(response?.serviceTier);
  return { usage };
}

const METRICS_KEY = 'amazon-bedrock-invocationMetrics';

/**
 * InvokeModelWithResponseStream: items `{chunk: {bytes}}`, each one JSON event of the model's own stream. Only the
 * chunk that carries the invocation metrics (the last) is decoded: the others are searched for the key as bytes.
 */
function readInvokeStreamChunk(item: unknown, facts: ResponseFacts): boolean {
  const bytes = asRecord(asRecord(item)?.chunk)?.bytes;
  if (!(bytes instanceof Uint8Array) || !bytesView(bytes).includes(METRICS_KEY)) return false;
  const usage = invocationMetricsUsage(parseJsonBytes(bytes)?.[METRICS_KEY]);
  if (usage !== undefined) {
    facts.usage = usage;
    facts.complete = true;
  }
  return false;
}

// ---- the request -----------------------------------------------------------------------------------------------------

/** Converse content blocks by kind; an InvokeModel body is the model's own JSON, measured as the text it is. */
function classifyInput(part: Record<string, unknown>): InputPart {
  if (part.image !== undefined) return 'image';
  if (part.document !== undefined) return 'document';
  if (part.video !== undefined) return 'video';
  if (part.audio !== undefined) return 'audio';
  return undefined;
}

const unmetered = { readRequest: readRequest(false), readResponse: (): ResponseFacts => ({}) };

const converse: HookTarget = {
  endpoint: 'converse',
  classPath: [],
  clientPath: [],
  method: 'send',
  readRequest: readRequest(false),
  // Paths from the command: its `input` is the request.
  outputCap: [['input', 'inferenceConfig', 'maxTokens']],
  readResponse: converseFacts,
  requestIdOf,
  callbackLast: true,
};

const converseStream: HookTarget = {
  ...converse,
  endpoint: 'converse.stream',
  readRequest: readRequest(true),
  streamAt: 'stream',
  readStreamItem: readConverseStreamEvent,
};

// An InvokeModel body is the model's own request: where its output cap is depends on the model.
const invokeModel: HookTarget = {
  ...converse,
  endpoint: 'invoke_model',
  outputCap: undefined,
  readResponse: invokeModelFacts,
};

const invokeModelStream: HookTarget = {
  ...invokeModel,
  endpoint: 'invoke_model.stream',
  readRequest: readRequest(true),
  streamAt: 'body',
  readStreamItem: readInvokeStreamChunk,
};

const BY_OPERATION: Readonly<Record<string, HookTarget>> = {
  Converse: converse,
  ConverseStream: converseStream,
  InvokeModel: invokeModel,
  InvokeModelWithResponseStream: invokeModelStream,
};

export const bedrockPatch: ProviderPatch = {
  name: 'bedrock',
  provider: 'aws',
  packageName: '@aws-sdk/client-bedrock-runtime',
  // No exports map: Node loads dist-cjs for import and require alike; bundlers take dist-es (`module`).
  classFiles: /^dist-(cjs|es)\/index\.js$/,
  style: 'promise',
  inputExcludesCache: true,
  classifyInput,
  root: (moduleExports) => moduleExports,
  // The endpoint is an async provider in the client's config: not known when a call starts.
  baseUrl: () => undefined,
  isClient: (client) => typeof objectAt(client, ['send']) === 'function' && objectAt(client, ['config', 'serviceId']) === 'Bedrock Runtime',
  targets: [
    {
      ...unmetered,
      endpoint: 'send',
      classPath: ['BedrockRuntimeClient'],
      clientPath: [],
      method: 'send',
      select: (args) => {
        const operation = operationOf(args[0]);
        return operation !== undefined && Object.hasOwn(BY_OPERATION, operation) ? BY_OPERATION[operation] : undefined;
      },
    },
  ],
};
