import type { ModelPrice } from '@pydantic/genai-prices';
import type { UsageEvent } from '../event.js';

/** `price_source` of a cost priced only from this table. */
export const SUPPLEMENTARY_SOURCE = 'llm-meter table 2026-11';

/**
 * Prices the bundled @pydantic/genai-prices data lacks, as the providers publish them on the page cited beside each.
 * Checked on 2026-11-30 against public copies and quotes of those pages (the pages themselves were not reachable from
 * where the table was written): re-check them there before relying on a figure. The table is dated by
 * `SUPPLEMENTARY_SOURCE`, and a user's `prices` entry for the model wins over it.
 */
export interface SupplementaryPrice {
  /**
   * Rates in the library's price keys and units (`input_mchars`: USD per million characters; `*_mtok`: per million
   * tokens). Where the library prices the model too, its own rates win and these fill only the keys it lacks.
   */
  rates?: ModelPrice;
  /** USD for one image of the event's requested size and quality; undefined for a size the model does not make. */
  perImage?: (event: UsageEvent) => number | undefined;
}

// https://openai.com/api/pricing/ (DALL·E 3 under "Image generation", legacy models): per image, by size and quality.
// A request without `size` or `quality` gets 1024x1024 at standard (the API's defaults for dall-e-3).
const DALL_E_3: Record<string, readonly [standard: number, hd: number]> = {
  '1024x1024': [0.04, 0.08],
  '1024x1792': [0.08, 0.12],
  '1792x1024': [0.08, 0.12],
};

function dallE3Image(event: UsageEvent): number | undefined {
  const size = `${event.image_width ?? 1024}x${event.image_height ?? 1024}`;
  const prices = DALL_E_3[size];
  if (prices === undefined) return undefined;
  return (event.hd_image_count ?? 0) > 0 ? prices[1] : prices[0];
}

const TABLE: Record<string, SupplementaryPrice> = {
  // https://openai.com/api/pricing/ (TTS under "Audio", legacy models): $15 / $30 per 1M input characters.
  'openai:tts-1': { rates: { input_mchars: 15 } },
  'openai:tts-1-hd': { rates: { input_mchars: 30 } },
  'openai:dall-e-3': { perImage: dallE3Image },
  // https://platform.openai.com/docs/models/gpt-4o-audio-preview: audio tokens $40 in / $80 out per 1M (the
  // 2024-12-17 and 2025-06-03 snapshots; the bundled data has the text rates). The 2024-10-01 snapshot's audio rates
  // ($100 / $200) could not be confirmed and are left out.
  ...Object.fromEntries(
    ['gpt-4o-audio-preview', 'gpt-4o-audio-preview-2024-12-17', 'gpt-4o-audio-preview-2025-06-03'].map((id) => [
      `openai:${id}`,
      { rates: { input_audio_mtok: 40, output_audio_mtok: 80 } },
    ]),
  ),
  // https://cloud.google.com/vertex-ai/generative-ai/pricing ("Embeddings", text, online requests): $0.000025 per 1,000
  // input characters, counted by Vertex as `billableCharacterCount`.
  'google:text-embedding-005': { rates: { input_mchars: 0.025 } },
};

/** The table's price for a (provider, canonical model id), if it has one. */
export function supplementaryPrice(provider: string, modelId: string): SupplementaryPrice | undefined {
  return TABLE[`${provider}:${modelId}`];
}
