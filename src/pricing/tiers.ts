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
 * Left out, for want of one published figure: OpenAI `priority` and Vertex `ON_DEMAND_PRIORITY` (a price per model),
 * Anthropic `priority` (contracted capacity), Anthropic `speed: fast` (6x on Opus 4.6, other multipliers on other
 * models), OpenAI regional processing (not reported in the response). Gemini and OpenAI batch results are not metered
 * per row, so they need no rule.
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

export interface TierPrice {
  /** The product of every rule that applies: the providers' modifiers stack. */
  factor: number;
  /** For the event's `price_tier`, e.g. `service_tier=batch x0.5, inference_geo=us x1.1`. */
  label: string;
}

/** The multiplier for the terms the event reports, or undefined when its standard price applies. */
export function tierPrice(event: UsageEvent): TierPrice | undefined {
  // Most calls report no term at all: nothing to look up on the hot path.
  if (event.service_tier === undefined && event.inference_geo === undefined) return undefined;
  const rules = RULES.filter((rule) => rule.provider === event.provider && event[rule.term] === rule.value);
  if (rules.length === 0) return undefined;
  return {
    factor: rules.reduce((product, rule) => product * rule.factor, 1),
    label: rules.map((rule) => `${rule.term}=${rule.value} x${rule.factor}`).join(', '),
  };
}
