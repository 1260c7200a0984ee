import type { RawUsage } from '../src/event.js';
import { adoptIdentity } from './openai.js';
import type { InputPart } from '../src/limits/estimate.js';
import { asRecord, objectAt, stringField, type HookTarget, type ProviderPatch, type ResponseFacts } from './provider.js';

// @mistralai/mistralai (Speakeasy-generated, ESM only). The package's root exports only the `Mistral` client class; it
// makes each resource (`Chat`, `Fim`, `Embeddings`, `Agents`) lazily in a prototype getter (`get chat() { return
// this._chat ??= new Chat(this._options) }`). The resource classes are reached once per loaded build by running those
// getters on a throwaway receiver: they construct a resource with default options (no request is sent) whose
// constructor is the class to patch. Its methods (`complete`, `stream`, `create`, `parse`, `parseStream`) are async
// prototype methods that each send one request; they resolve to the value after the SDK's camelCase transform
// (`usage.promptTokens`) or, for streams, to an EventStream (a web ReadableStream) of `{ data: CompletionChunk }`.

/** The resources to patch: the client's getter, and the class key under the patch's root. */
const RESOURCES = { Chat: 'chat', Fim: 'fim', Embeddings: 'embeddings', Agents: 'agents' } as const;

const rootsByClient = new WeakMap<Function, Record<string, unknown>>();

/** `{ Mistral, Chat, Fim, Embeddings, Agents }` of one loaded build, or undefined when it is not one. */
function mistralRoot(moduleExports: unknown): unknown {
  const client = objectAt(moduleExports, ['Mistral']);
  if (typeof client !== 'function') return undefined;
  const known = rootsByClient.get(client);
  if (known !== undefined) return known;
  const root: Record<string, unknown> = { Mistral: client };
  for (const [className, getterName] of Object.entries(RESOURCES)) {
    const getter = Object.getOwnPropertyDescriptor(client.prototype, getterName)?.get;
    if (getter === undefined) continue;
    try {
      const resource = asRecord(getter.call({}));
      const resourceClass = resource?.constructor;
      if (typeof resourceClass === 'function' && resourceClass !== Object) root[className] = resourceClass;
    } catch {
      // A build whose getters need a real client: its resources are patched through instrument(client) only.
    }
  }
  rootsByClient.set(client, root);
  return root;
}

const count = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

/**
 * Mistral's usage (`UsageInfo`, camelCase after the SDK's transform; unknown fields kept as sent, snake_case):
 * `promptTokens` includes the cached prompt tokens (`prompt_tokens_details.cached_tokens`, billed at the cache-read
 * rate), `completionTokens` includes any reasoning tokens. Older responses name the cached count `num_cached_tokens` or
 * `prompt_token_details`; a newer SDK may remap them to camelCase.
 */
export function mistralUsage(raw: unknown): RawUsage | undefined {
  const usage = asRecord(raw);
  if (usage === undefined) return undefined;
  const prompt = count(usage.promptTokens ?? usage.prompt_tokens);
  const completion = count(usage.completionTokens ?? usage.completion_tokens);
  if (prompt === undefined && completion === undefined) return undefined;
  const details = asRecord(usage.prompt_tokens_details ?? usage.promptTokensDetails ?? usage.prompt_token_details ?? usage.promptTokenDetails);
  const cached = count(details?.cached_tokens ?? details?.cachedTokens ?? usage.num_cached_tokens ?? usage.numCachedTokens);
  const completionDetails = asRecord(usage.completion_tokens_details ?? usage.completionTokensDetails);
  const reasoning = count(completionDetails?.reasoning_tokens ?? completionDetails?.reasoningTokens);
  return {
    input_tokens: prompt ?? 0,
    output_tokens: completion ?? 0,
    total_tokens: count(usage.totalTokens ?? usage.total_tokens),
    cached_tokens: cached !== undefined && cached > 0 ? cached : undefined,
    reasoning_tokens: reasoning !== undefined && reasoning > 0 ? reasoning : undefined,
    service_tier: usage.serviceTier ?? usage.service_tier,
  };
}

function responseFacts(data: unknown): ResponseFacts {
  const response = asRecord(data);
  return { model: stringField(response, 'model'), responseId: stringField(response, 'id'), usage: mistralUsage(response?.usage) };
}

/** Stream items are `{ data: CompletionChunk }`; the last chunk (with the finish reason) carries the call's usage. */
function readStreamChunk(item: unknown, facts: ResponseFacts): boolean {
  const chunk = asRecord(asRecord(item)?.data);
  if (chunk === undefined) return false;
  adoptIdentity(facts, chunk);
  const usage = mistralUsage(chunk.usage);
  if (usage !== undefined) {
    facts.usage = usage;
    facts.complete = true;
  }
  return false;
}

/** Tools that run at Mistral and feed what they find back into the model's input. */
const SERVER_TOOLS = new Set(['web_search', 'web_search_premium', 'code_interpreter', 'image_generation', 'document_library', 'connector']);

function classifyInput(part: Record<string, unknown>): InputPart {
  const type = part.type;
  if (type === 'image_url') return 'image';
  if (type === 'input_audio') return 'audio';
  if (type === 'document_url' || type === 'file') return 'document';
  if (typeof type === 'string' && SERVER_TOOLS.has(type)) return 'unbounded';
  // An agent's own instructions and tools, stored at Mistral, are part of its input.
  if (typeof part.agentId === 'string') return 'unbounded';
  return undefined;
}

const readParams = (args: readonly unknown[], stream: boolean) => ({ model: stringField(args[0], 'model'), stream });

const chatComplete: HookTarget = {
  endpoint: 'chat.completions',
  classPath: ['Chat'],
  clientPath: ['chat'],
  method: 'complete',
  path: '/v1/chat/completions',
  readRequest: (args) => readParams(args, false),
  outputCap: [['maxTokens']],
  completions: [['n']],
  readResponse: responseFacts,
};

const chatStream: HookTarget = {
  ...chatComplete,
  method: 'stream',
  readRequest: (args) => readParams(args, true),
  readStreamItem: readStreamChunk,
};

export const mistralPatch: ProviderPatch = {
  name: 'mistral',
  provider: 'mistral',
  packageName: '@mistralai/mistralai',
  // The package's main, and the module that defines the client (reachable through its `./*` exports).
  classFiles: /^esm\/(index|sdk\/sdk|sdk\/index)\.js$/,
  style: 'promise',
  classifyInput,
  root: mistralRoot,
  baseUrl: (resource) => {
    const url = objectAt(resource, ['_baseURL']);
    return url instanceof URL || typeof url === 'string' ? String(url) : undefined;
  },
  isClient: (client) =>
    objectAt(client, ['_baseURL']) !== undefined &&
    typeof objectAt(client, ['chat', 'complete']) === 'function' &&
    typeof objectAt(client, ['fim', 'complete']) === 'function',
  targets: [
    chatComplete,
    chatStream,
    // Structured output: `parse` and `parseStream` send their request themselves (not through complete/stream).
    { ...chatComplete, method: 'parse' },
    { ...chatStream, method: 'parseStream' },
    { ...chatComplete, endpoint: 'fim.completions', classPath: ['Fim'], clientPath: ['fim'], path: '/v1/fim/completions', completions: undefined },
    { ...chatStream, endpoint: 'fim.completions', classPath: ['Fim'], clientPath: ['fim'], path: '/v1/fim/completions', completions: undefined },
    // An agent's model is its own: known from the response only.
    { ...chatComplete, endpoint: 'agents.completions', classPath: ['Agents'], clientPath: ['agents'], path: '/v1/agents/completions' },
    { ...chatStream, endpoint: 'agents.completions', classPath: ['Agents'], clientPath: ['agents'], path: '/v1/agents/completions' },
    {
      endpoint: 'embeddings',
      classPath: ['Embeddings'],
      clientPath: ['embeddings'],
      method: 'create',
      path: '/v1/embeddings',
      readRequest: (args) => readParams(args, false),
      readResponse: responseFacts,
    },
  ],
};
