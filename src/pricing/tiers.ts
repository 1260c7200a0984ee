import type { ModelPrice } from '@pydantic/genai-prices';
import type { BillingTerm, UsageEvent } from '../event.js';

/**
 * A multiplier on a model's standard price, for a call the provider reports it served under `term` = `value`.
 * @pydantic/genai-prices 0.1.8 has standard rates only (no flex, priority, batch or regional prices), so these come from
 * the providers' own pages, each cited beside its figure as read on 2026-11-30. The multiplier applies to the call's
 * whole cost, per-call tool fees (web searches) included.
 */
interface TierRule {
  provider: string;
  term: BillingTerm;
  value: string;
  factor: number;
}

/**
 * Left out, for want of one published figure: Vertex `ON_DEMAND_PRIORITY` (a price per model), Anthropic `priority`
 * (contracted capacity), Anthropic `speed: fast` (6x on Opus 4.6, other multipliers on other models), OpenAI regional
 * processing (not reported in the response). Gemini and OpenAI batch results are not metered per row, so they need no
 * rule. OpenAI priority has a price per model: PRIORITY_RATES below.
 */
const RULES: readonly TierRule[] = [
  // https://developers.openai.com/api/docs/guides/flex-processing: "Tokens are priced at Batch API rates";
  // https://help.openai.com/en/articles/9197833-batch-api-faq: "50% cost discount vs. the synchronous APIs".
  { provider: 'openai', term: 'service_tier', value: 'flex', factor: 0.5 },
  // https://platform.claude.com/docs/en/build-with-claude/batch-processing: "reducing costs by 50%".
  { provider: 'anthropic', term: 'service_tier', value: 'batch', factor: 0.5 },
  // https://support.claude.com/en/articles/15422948-enable-us-only-inference-for-your-organization: "billed at 1.1x
  // standard API rates for Claude Opus 4.6, Claude Sonnet 4.6, and later models" (older models refuse inference_geo);
  // https://docs.aws.amazon.com/claude-platform/latest/userguide/data-residency.html: "US ... A 1.1x pricing multiplier
  // applies. Global ... Standard pricing applies."
  { provider: 'anthropic', term: 'inference_geo', value: 'us', factor: 1.1 },
  // https://docs.cloud.google.com/vertex-ai/generative-ai/docs/flex-paygo: "Flex PayGo offers a 50% discount compared
  // to Standard PayGo."
  { provider: 'google', term: 'service_tier', value: 'ON_DEMAND_FLEX', factor: 0.5 },
];

/**
 * OpenAI priority processing ("Fast mode" since 2026-07-30; the response reports `service_tier` `priority` or `fast`):
 * its own per-model token rates in USD per million tokens, [input, cached input, output], keyed by the price data's
 * model id (snapshots resolve to it), from https://openai.com/api-priority-processing/ and
 * https://openai.com/api-fast-mode/ as read on 2026-11-30. Long-context requests are served (and reported) as `default`.
 * Per-call tool fees keep their standard price.
 */
const PRIORITY_RATES: Readonly<Record<string, readonly [number, number | undefined, number]>> = {
  'gpt-5.5': [12.5, 1.25, 75],
  'gpt-5.4': [5, 0.5, 30],
  'gpt-5.4-mini': [1.5, 0.15, 9],
  'gpt-5.2': [3.5, 0.35, 28],
  'gpt-5.1': [2.5, 0.25, 20],
  'gpt-5': [2.5, 0.25, 20],
  'gpt-5-mini': [0.45, 0.045, 3.6],
  'gpt-4.1': [3.5, 0.875, 14],
  'gpt-4.1-mini': [0.7, 0.175, 2.8],
  'gpt-4.1-nano': [0.2, 0.05, 0.8],
  'gpt-4o': [4.25, 2.125, 17],
  'gpt-4o-2024-05-13': [8.75, undefined, 26.25],
  'gpt-4o-mini': [0.25, 0.125, 1],
  o3: [3.5, 0.875, 14],
  'o4-mini': [2, 0.5, 8],
};

export interface TierRates {
  /** The model's price with its token rates replaced by the tier's (a model without a cached rate there has none). */
  price: ModelPrice;
  label: string;
}

/** The model's own rates for the tier the event reports, where the provider publishes them per model. */
export function tierRates(event: UsageEvent, price: ModelPrice, modelId: string): TierRates | undefined {
  if (event.provider !== 'openai' || (event.service_tier !== 'priority' && event.service_tier !== 'fast')) return undefined;
  const found = PRIORITY_RATES[modelId];
  if (found === undefined) return undefined;
  const [input, cached, output] = found;
  const { cache_read_mtok: _standardCached, ...others } = price;
  const tierPrice: ModelPrice = Object.assign(others, { input_mtok: input, output_mtok: output });
  if (cached !== undefined) tierPrice.cache_read_mtok = cached;
  return { price: tierPrice, label: `service_tier=${event.service_tier} (${modelId} priority rates)` };
}

export interface TierPrice {
  /** The product of every rule that applies: the providers' modifiers stack. */
  factor: number;
  /** For the event's `price_tier`, e.g. `service_tier=batch x0.5, inference_geo=us x1.1`. */
  label: string;
}

/** The multiplier for the terms the event reports, or undefined when its standard price applies. */
/** Every value some rule prices: a call reporting none of them (most report none, or `default`) looks nothing up. */
const PRICED_VALUES: ReadonlySet<string | undefined> = new Set(RULES.map((rule) => rule.value));

export function tierPrice(event: UsageEvent): TierPrice | undefined {
  if (!PRICED_VALUES.has(event.service_tier) && !PRICED_VALUES.has(event.inference_geo)) return undefined;
  const rules = RULES.filter((rule) => rule.provider === event.provider && event[rule.term] === rule.value);
  if (rules.length === 0) return undefined;
  return {
    factor: rules.reduce((product, rule) => product * rule.factor, 1),
    label: rules.map((rule) => `${rule.term}=${rule.value} x${rule.factor}`).join(', '),
  };
}
