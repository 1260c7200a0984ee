import { randomUUID } from 'node:crypto';
import { describeError } from './log.js';
import { isoTimestamp } from './timestamps.js';
import type { Reservation } from './limits/store.js';
import type { InputClassifier } from './limits/estimate.js';
import type { HookTarget } from '../patches/provider.js';
import type { ScopeContext, TenantContext } from './tenants/tenant.js';
import type { ClientBinding } from './tenants/wrapped-clients.js';
import type { ProviderIdentity } from './providers/identity.js';
import type { ProviderId } from './providers/provider-id.js';

/** Token and unit counts an extractor may report; every one is optional and omitted from the event when absent. */
export const USAGE_FIELDS = [
  'input_tokens',
  'output_tokens',
  'total_tokens',
  'cached_tokens',
  'cache_creation_tokens',
  'cache_creation_5m_tokens',
  'cache_creation_1h_tokens',
  'reasoning_tokens',
  'duration_seconds',
  'audio_input_tokens',
  'cached_input_audio_tokens',
  'audio_output_tokens',
  'character_count',
  'input_text_tokens',
  'cached_input_text_tokens',
  'input_image_tokens',
  'input_video_tokens',
  'cached_input_image_tokens',
  'output_image_tokens',
  'image_count',
  'web_search_requests',
  'file_search_calls',
  'image_width',
  'image_height',
  'hd_image_count',
] as const;

export type UsageField = (typeof USAGE_FIELDS)[number];
export type UsageCounts = Partial<Record<UsageField, number>>;

/**
 * The terms a response says it was served under (words, not counts), read with its usage because they set the price of
 * that usage: see src/pricing/tiers.ts.
 */
export const BILLING_TERMS = ['service_tier', 'inference_geo', 'speed'] as const;
export type BillingTerm = (typeof BILLING_TERMS)[number];

/**
 * Usage as read off a response, before validation: anything that is not a finite, non-negative count is dropped, and a
 * billing term that is not a non-empty string is left out.
 */
export type RawUsage = Partial<Record<UsageField | BillingTerm, unknown>>;

/** The labels a scope or a wrapped client puts on its events. */
export interface EventLabels {
  /** The product feature the call served (a scope's or a wrapped client's `feature`). */
  feature?: string;
  /** The billing metric the usage counts toward (a wrapped client's `metricCode`, default `llm_tokens`). */
  metric_code?: string;
  /** The run (an agent's task, a ticket) the call was part of: see `meter.forRun` and `meter.resolve`. */
  run_id?: string;
  agent_id?: string;
  tags?: Record<string, string>;
}

/** One metered call, as it goes on the wire (snake_case, like the provider APIs). */
export interface UsageEvent extends UsageCounts, EventLabels {
  type: 'usage';
  event_id: string;
  tenant_id?: string;
  provider: ProviderId;
  model: string;
  endpoint: string;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  duration_ms: number;
  timestamp: string;
  request_id?: string;
  stream: boolean;
  error?: string;
  partial?: boolean;
  usage_invalid?: boolean;
  /** Host (and port) of the base URL the request went to, where the SDK says (e.g. `api.deepseek.com`, `127.0.0.1:8000`). */
  host?: string;
  /** The provider a gateway routed the call to, as the gateway names it (OpenRouter's `provider`, e.g. `DeepInfra`). */
  upstream_provider?: string;
  /** Cost in USD at the price of `price_source`. */
  cost_usd?: number;
  /** Where the price came from: `config` (an override), the price package and version, or `reported`. */
  price_source?: string;
  /** With a `reported` cost: the agent's own estimate of the same usage, for comparison (absent when it knows no price). */
  estimated_cost_usd?: number;
  /** No price is known for this provider and model: cost_usd is 0. */
  price_unknown?: boolean;
  /** The provider's usage never arrived (early break, abort): cost_usd is the call's reservation-sized estimate. */
  cost_estimated?: boolean;
  /** The usage did not add up (e.g. more cached than input tokens): priced as well as it could be. */
  price_inconsistent?: boolean;
  /**
   * The service tier the provider reports it served the call at, as it spells it: OpenAI `service_tier` (`default`,
   * `flex`, `priority`, ...), Anthropic `usage.service_tier` (`standard`, `priority`, `batch`; every batch result row is
   * `batch`), Vertex AI `usageMetadata.trafficType` (`ON_DEMAND`, `ON_DEMAND_FLEX`, `ON_DEMAND_PRIORITY`, ...).
   */
  service_tier?: string;
  /** Where the provider reports inference ran (Anthropic `usage.inference_geo`: `global`, `us`). */
  inference_geo?: string;
  /** The inference speed the provider reports (Anthropic `usage.speed`: `standard`, `fast`). */
  speed?: string;
  /**
   * The multipliers applied to the model's standard price for the terms above, e.g. `service_tier=flex x0.5`; absent
   * when the standard price was charged (see the table in src/pricing/tiers.ts).
   */
  price_tier?: string;
  /** Revenue the app books for the call (a wrapped client's `revenueUsd`), in USD. */
  revenue_usd?: number;
  /** Audio input tokens read from a context cache (Gemini): part of `audio_input_tokens` and `cached_tokens`, priced at the cached-audio rate. */
  cached_input_audio_tokens?: number;
  /** Video input tokens (Gemini): part of `input_tokens`, priced at the model's video rate where it has one. */
  input_video_tokens?: number;
  /** Image input tokens read from cache (gpt-image): part of `input_image_tokens`, priced at the cached-image rate. */
  cached_input_image_tokens?: number;
  /** File search tool calls the provider ran (OpenAI Responses), each priced per call. */
  file_search_calls?: number;
  /** The requested size of each image, in pixels (OpenAI images, from `size`): what a per-image price depends on. */
  image_width?: number;
  image_height?: number;
  /** Images requested at quality `hd` (DALL-E 3): part of `image_count`, priced at the HD rate. */
  hd_image_count?: number;
}

/** A run's outcome (`meter.resolve`), as it goes on the wire beside usage events. */
export interface OutcomeEvent extends EventLabels {
  type: 'outcome';
  /** Derived from the run id: resolving a run again gives the same id, one event to a deduplicating backend. */
  event_id: string;
  run_id: string;
  tenant_id?: string;
  outcome: RunOutcome;
  revenue_usd: number;
  /** What the run's calls this process recorded cost, and how many there were. */
  cost_usd: number;
  calls: number;
  timestamp: string;
}

export const RUN_OUTCOMES = ['resolved', 'escalated', 'failed'] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

/** Anything the Meter delivers. */
export type MeterEvent = UsageEvent | OutcomeEvent;

/** Puts a scope's labels on an event. */
export function stampLabels(event: EventLabels, scope: ScopeContext | undefined): void {
  if (scope === undefined) return;
  if (scope.feature !== undefined) event.feature = scope.feature;
  if (scope.metricCode !== undefined) event.metric_code = scope.metricCode;
  if (scope.runId !== undefined) event.run_id = scope.runId;
  if (scope.agentId !== undefined) event.agent_id = scope.agentId;
  if (scope.tags !== undefined) event.tags = scope.tags;
}

/** What is known about a call when it starts. */
export interface CallStart {
  /** The provider the call went to (see src/providers/identity.ts). */
  provider: ProviderId;
  identity: ProviderIdentity;
  /** The SDK's usage counts input_tokens without cache reads and writes (Anthropic, Bedrock): pricing adds them back. */
  inputExcludesCache: boolean;
  endpoint: string;
  requestedModel: string | undefined;
  stream: boolean;
  tenant: TenantContext | undefined;
  /** The call's scope (its tenant, if any, and labels): the ambient one, or a wrapped client's within it. */
  scope: ScopeContext | undefined;
  /** The terms of the wrapped client the call went through, if any. */
  binding: ClientBinding | undefined;
  startedAt: number;
  startedAtWall: number;
  /** The hooked method's declaration: where the request's output cap and completion count are, for a reservation. */
  target: HookTarget;
  /** The provider's reading of the request's media and server-side state, for sizing a reservation. */
  classifyInput: InputClassifier;
  /** The call's arguments, kept (by reference) only until it ends, for estimating a cost the provider never reported. */
  args: readonly unknown[];
  reservation?: Reservation | undefined;
  /** Spend already made at the provider (batch results): each item is counted, nothing is refused. */
  paidEarlier?: boolean;
  /** The cost the call was recorded at (0 when it never left): a reservation that arrives later settles at it. */
  closedAtUsd?: number;
}

/** What the call produced; the provider patch fills what its response carries. */
export interface CallOutcome {
  usage?: RawUsage | undefined;
  model?: string | undefined;
  responseId?: string | undefined;
  requestId?: string | undefined;
  error?: unknown;
  partial?: boolean;
  /** What the provider or gateway says the call cost, in USD: the truth for the call. */
  reportedCostUsd?: number | undefined;
  upstreamProvider?: string | undefined;
  /** The SDK's result, kept until the call is recorded only for a wrapped client's amounts that read it. */
  response?: unknown;
}

/**
 * More than any one call can use: every model's context window, hours of audio, thousands of images are all below it.
 * A count above it is a gateway's or a parser's mistake, not usage.
 */
const ABSURD_COUNT = 100_000_000;

/** Accepts only finite, non-negative, plausible counts: anything else from a response is untrusted and left out. */
function trustedCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value < ABSURD_COUNT ? value : undefined;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

const COUNT_FIELDS: ReadonlySet<string> = new Set(USAGE_FIELDS);
const TERM_FIELDS: ReadonlySet<string> = new Set(BILLING_TERMS);

export function buildEvent(start: CallStart, outcome: CallOutcome, endedAt: number): UsageEvent {
  const usage = outcome.usage;
  const event: UsageEvent = {
    type: 'usage',
    event_id: nonEmptyString(outcome.responseId) ?? randomUUID(),
    provider: start.provider,
    model: nonEmptyString(outcome.model) ?? start.requestedModel ?? 'unknown',
    endpoint: start.endpoint,
    input_tokens: 0,
    output_tokens: 0,
    total_tokens: 0,
    duration_ms: Math.round((endedAt - start.startedAt) * 1000) / 1000,
    timestamp: isoTimestamp(start.startedAtWall),
    stream: start.stream,
    // Set when the event is priced, which every event is: declared here so the event keeps one shape.
    cost_usd: 0,
    price_source: '',
  };
  if (start.tenant !== undefined) event.tenant_id = start.tenant.tenantId;
  const host = start.identity.host;
  if (host !== undefined) event.host = host;
  const upstream = nonEmptyString(outcome.upstreamProvider);
  if (upstream !== undefined) event.upstream_provider = upstream;
  let invalid = false;
  if (usage !== undefined) {
    // The fields the reader set, not every field there is: most calls report a handful.
    for (const key of Object.keys(usage)) {
      const raw = usage[key as keyof RawUsage];
      if (raw === undefined || raw === null) continue;
      if (COUNT_FIELDS.has(key)) {
        const value = trustedCount(raw);
        if (value === undefined) invalid = true;
        else event[key as UsageField] = value;
      } else if (TERM_FIELDS.has(key)) {
        const value = nonEmptyString(raw);
        if (value !== undefined) event[key as BillingTerm] = value;
      }
    }
    if (usage.total_tokens === undefined) event.total_tokens = event.input_tokens + event.output_tokens;
  }
  const requestId = nonEmptyString(outcome.requestId);
  if (requestId !== undefined) event.request_id = requestId;
  if (outcome.error !== undefined) event.error = describeError(outcome.error);
  if (outcome.partial === true || (usage === undefined && outcome.error === undefined)) event.partial = true;
  if (invalid) event.usage_invalid = true;
  stampLabels(event, start.scope);
  return event;
}
