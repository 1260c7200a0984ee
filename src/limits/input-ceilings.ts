import { ConfigError, describeValue } from '../errors.js';
import { MEDIA_KINDS, type MediaKind } from './estimate.js';

/** Tokens one media item can cost at most, per provider and kind; a kind left out is bounded by the context window. */
export type MediaTokenCeilings = Record<string, Partial<Record<MediaKind, number>>>;

/**
 * Images have a ceiling because every provider resizes them: OpenAI's largest high-detail image (gpt-4.1-mini's
 * patches, 1536 x 1.62) is under 2,500 tokens, Anthropic's under 1,600 (1.15 megapixels / 750), Gemini's 768 px tiles
 * cost 258 each (16 tiles, 3072 px square: 4,128). Audio, video and documents grow with their length: by default they
 * reserve the model's whole context window, unless the app sets a ceiling it knows holds for what it sends.
 */
export const DEFAULT_MEDIA_TOKENS: MediaTokenCeilings = {
  openai: { image: 2500 },
  anthropic: { image: 1600 },
  google: { image: 4128 },
};

/** The input a call without a bound reserves when the price data does not know the model's context window. */
export const DEFAULT_MAX_INPUT_TOKENS = 1_048_576;

export function resolveMediaTokens(value: unknown): MediaTokenCeilings {
  if (value === undefined) return DEFAULT_MEDIA_TOKENS;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`mediaTokens must be an object keyed by provider (e.g. { openai: { image: 2500 } }), got ${describeValue(value)}`);
  }
  const ceilings: MediaTokenCeilings = {};
  for (const [provider, kinds] of Object.entries(DEFAULT_MEDIA_TOKENS)) ceilings[provider] = { ...kinds };
  for (const [provider, kinds] of Object.entries(value as Record<string, unknown>)) {
    if (kinds === null || typeof kinds !== 'object' || Array.isArray(kinds)) {
      throw new ConfigError(`mediaTokens.${provider} must be an object of per-item token ceilings, got ${describeValue(kinds)}`);
    }
    for (const [kind, tokens] of Object.entries(kinds as Record<string, unknown>)) {
      if (!(MEDIA_KINDS as readonly string[]).includes(kind)) {
        throw new ConfigError(`mediaTokens.${provider}: unknown media kind ${JSON.stringify(kind)} (known: ${MEDIA_KINDS.join(', ')})`);
      }
      if (typeof tokens !== 'number' || !Number.isSafeInteger(tokens) || tokens < 0) {
        throw new ConfigError(`mediaTokens.${provider}.${kind} must be a non-negative integer, got ${describeValue(tokens)}`);
      }
    }
    ceilings[provider] = { ...ceilings[provider], ...(kinds as Partial<Record<MediaKind, number>>) };
  }
  return ceilings;
}
