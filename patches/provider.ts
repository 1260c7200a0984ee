import type { CallOutcome, RawUsage } from '../src/event.js';
import type { ProviderId } from '../src/providers/provider-id.js';
import type { InputClassifier } from '../src/limits/estimate.js';

/** What a response (or the items of a stream, read so far) says about the call. */
export interface ResponseFacts {
  usage?: RawUsage | undefined;
  model?: string | undefined;
  responseId?: string | undefined;
  /** The stream delivered its final usage: a stream cut short after this point is not partial. */
  complete?: boolean;
  /** The provider's own usage object accumulated over a stream, for providers whose stream events update it piecemeal. */
  providerUsage?: Record<string, unknown>;
  /** Reads `providerUsage` (the agent's own copy) once, when the call is recorded, not at every event that updates it. */
  readProviderUsage?: (usage: Record<string, unknown>) => RawUsage | undefined;
  /** What the provider or gateway says the call cost, in USD (OpenRouter `usage.cost`): the truth for this call. */
  reportedCostUsd?: number | undefined;
  /** The provider a gateway routed the call to, as the gateway names it (OpenRouter `provider`). */
  upstreamProvider?: string | undefined;
  /** An error the stream carried as an item of its own (an AI SDK `error` part) rather than throwing it. */
  error?: unknown;
}

/** The usage the facts carry: read, or to be read from the provider's accumulated usage. */
export function usageOf(facts: ResponseFacts): RawUsage | undefined {
  if (facts.usage !== undefined || facts.providerUsage === undefined) return facts.usage;
  return facts.readProviderUsage?.(facts.providerUsage);
}

/** The outcome of a call whose response (or stream, so far) says `facts`. */
export function outcomeOf(facts: ResponseFacts, requestId: string | undefined): CallOutcome {
  const outcome: CallOutcome = { usage: usageOf(facts), model: facts.model, responseId: facts.responseId, requestId };
  if (facts.reportedCostUsd !== undefined) outcome.reportedCostUsd = facts.reportedCostUsd;
  if (facts.upstreamProvider !== undefined) outcome.upstreamProvider = facts.upstreamProvider;
  if (facts.error !== undefined) outcome.error = facts.error;
  return outcome;
}

/** The base URL of a Stainless client (openai, anthropic, groq), from one of its resources or `{ _client }`. */
export function clientBaseUrl(resource: unknown): string | undefined {
  return stringField(objectAt(resource, ['_client']), 'baseURL');
}

/** The request as the patch sees it when the call starts: only what metering needs, never content. */
export interface RequestFacts {
  model: string | undefined;
  stream: boolean;
}

/** A property path inside a request's params, e.g. ['config', 'maxOutputTokens']. */
export type ParamPath = readonly string[];

/** What a patch asked the provider for on its own account, for a call sent with the caller's own arguments. */
export interface PreparedCall {
  /** Items the patch asked for (e.g. a usage-only stream chunk) that the caller must not see. */
  hideInjected: boolean;
  /** Top-level body fields the provider must get (objects merged into the caller's value), added when it is encoded. */
  bodyAdditions?: Record<string, unknown>;
}

/** One method to hook: where it lives and how to read what it returns. */
export interface HookTarget {
  /** Event `endpoint`, e.g. 'chat.completions'. */
  endpoint: string;
  /** Path from the SDK's root class to the resource class whose prototype holds the method. */
  classPath: readonly string[];
  /** Path from a client instance to an instance of that resource class. */
  clientPath: readonly string[];
  method: string;
  /** The path the method's request goes to (query included), for requests sent to it through the generic methods. */
  path?: string;
  /** `resource`: the object the method was called on (an AI SDK model names its model id itself). */
  readRequest(args: readonly unknown[], resource?: unknown): RequestFacts;
  /**
   * Where the request's output cap may be, the one strict mode sends (when the request has none) first. Absent: the
   * request cannot cap its output, which is then bounded by defaultMaxOutputTokens.
   */
  outputCap?: readonly ParamPath[];
  /** The cap the provider applies itself when the request sets none (then strict mode need not send one). */
  defaultOutputCap?: number;
  /** Where the request asks for several completions (n, best_of, candidateCount): each may run to the cap. */
  completions?: readonly ParamPath[];
  /**
   * Billable, at a price the agent cannot know when it is sent (a batch, a video): one event with price_unknown and no
   * usage, and the unknownModel policy for a limited tenant.
   */
  unpriced?: true;
  /** Spend already made at the provider (batch results): recorded and counted, never refused. */
  paidEarlier?: true;
  /**
   * For a method that serves several endpoints (Bedrock's `send`, one per command): the target that meters this call,
   * or undefined for a call that is not metered at all (passed straight through).
   */
  select?(args: readonly unknown[]): HookTarget | undefined;
  /** The property of the method's result that holds its stream (Bedrock's `stream`, `body`), metered in place. */
  streamAt?: string;
  /** The request id a result or an error carries (Bedrock `$metadata.requestId`), for SDKs that expose no headers. */
  requestIdOf?(resultOrError: unknown): string | undefined;
  /** The method takes an optional Node-style callback last (smithy's `send(command, options?, cb?)`). */
  callbackLast?: true;
  /** The event's endpoint when it depends on the request (a completion with a `suffix` is fill-in-the-middle) or the model. */
  endpointOf?(args: readonly unknown[], resource: unknown): string;
  prepare?(args: readonly unknown[], resource: unknown): PreparedCall | undefined;
  /** `resource`: the object the method was called on (an AI SDK model, whose provider sets its usage convention). */
  readResponse(data: unknown, args: readonly unknown[], resource?: unknown): ResponseFacts;
  /** Reads one stream item into `facts`; says what the caller gets instead of the item, if anything (StreamItemReader). */
  readStreamItem?(item: unknown, facts: ResponseFacts, hideInjected: boolean): boolean | object;
  /** A stream item reader for the object the method was called on, where reading depends on it (an AI SDK model). */
  streamReaderFor?(resource: unknown): (item: unknown, facts: ResponseFacts, hideInjected: boolean) => boolean | object;
  /**
   * For a method that returns a stream whose requests start lazily, on first read (genai's automatic function calling):
   * no event of its own, but the stream runs in the caller's async context, so the hooked calls it makes are billed to
   * the caller's tenant.
   */
  bindsCallerContext?: true;
  /**
   * For a method that returns billed units to iterate (batch results): the facts of one item, which becomes an event of
   * its own, or undefined for an item that was not billed. The call itself then yields no event.
   */
  readEachItem?(item: unknown): ResponseFacts | undefined;
}

/**
 * How a provider's methods deliver results:
 * - 'api-promise': Stainless-generated SDKs (openai, anthropic), whose methods return an APIPromise that must be handed
 *   back as is, and whose streams are `Stream` objects with an `iterator` property.
 * - 'promise': plain promises that resolve to a value or to an async iterable stream.
 */
export type ResultStyle = 'api-promise' | 'promise';

/** A provider SDK, declared: the modules to hook, where its classes are, and how to read them. */
export interface ProviderPatch {
  /** The SDK's name for `patch()`, `providers` and debug output. */
  name: string;
  /** The provider of its events when the base URL names no host the price library knows ('aws' for Bedrock). */
  provider: ProviderId;
  /**
   * The provider a hooked object names for itself (an AI SDK model's `provider`), when its host names none; the patch's
   * `provider` when it names none either.
   */
  providerOf?(resource: unknown): ProviderId | undefined;
  /** The base URL a hooked resource (or a client, for the generic request methods) sends its requests to. */
  baseUrl?(resource: unknown): string | undefined;
  /** The provider a client's class names whatever its URL (AzureOpenAI on a custom domain), if any. */
  clientProvider?(resource: unknown): ProviderId | undefined;
  /** The npm package. */
  packageName: string;
  /**
   * The package's files (path inside the package, `/`-separated) that define or export its root class: whichever of
   * the package's entry points the app loads first, one of these loads with it, in every build (CJS, ESM, web).
   */
  classFiles: RegExp;
  style: ResultStyle;
  /** Usage whose input_tokens excludes cache reads and writes (Anthropic): pricing adds them back. */
  inputExcludesCache?: boolean;
  /** Response header carrying the provider's request id. */
  requestIdHeader?: string;
  /** The root class (or namespace) of one loaded build of the SDK, from its module exports. */
  root(moduleExports: unknown): unknown;
  /**
   * The client's method every request goes through (Stainless `methodRequest`), where a request can wait for an
   * asynchronous spend check. Patched on the root class's prototype (or a client's).
   */
  requestMethod?: string;
  /** The client's method that encodes a request body (Stainless `buildBody`), where the agent's own fields are added. */
  bodyEncoder?: string;
  /** The client's method that sends one request given whole options (Stainless `request`), also public. */
  rawRequestMethod?: string;
  /**
   * Requests sent through the generic methods (`client.post(path, ...)`, `client.request(...)`, resources without a
   * hook): a request to a target's `path` is metered like that target; the POSTs here cost nothing; any other POST is
   * billable at a price unknown when it is sent.
   */
  requestRoutes?: { freePosts: RegExp };
  /**
   * Public async methods around hooked ones (genai's, assigned per instance by the constructor or on the prototype):
   * guarded so that a call the agent refuses never becomes an unhandled rejection (see patches/calls/outer-call.ts).
   */
  guardedMethods?: readonly {
    classPath: readonly string[];
    /** An instance of the class, from a client (for `instrument`, which has no module to find the class in). */
    fromClient(client: unknown): unknown;
    names: readonly string[];
  }[];
  /** Reads the parts of a request's params that are not plain text (media, server-side state), for sizing a reservation. */
  classifyInput: InputClassifier;
  /** True for a client instance of this SDK (any build, any copy). */
  isClient(client: unknown): boolean;
  targets: readonly HookTarget[];
}

export function objectAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || (typeof node !== 'object' && typeof node !== 'function')) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
}

export function numberField(value: unknown, key: string): number | undefined {
  const field = asRecord(value)?.[key];
  return typeof field === 'number' ? field : undefined;
}

export function stringField(value: unknown, key: string): string | undefined {
  const field = asRecord(value)?.[key];
  return typeof field === 'string' ? field : undefined;
}
