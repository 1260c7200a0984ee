import { readFileSync } from 'node:fs';
import type { ProviderId } from 'llm-meter';
import { describe, expect, it } from 'vitest';
import { requireFromRepo } from './helpers.js';

// ProviderId, the union events and options name providers by, against the price data it comes from. The record below
// is exhaustive at compile time (a missing or extra id fails the type check); the test holds it to the data.

const PROVIDERS: Record<ProviderId, 'priced' | 'unpriced'> = {
  anthropic: 'priced',
  arcee: 'priced',
  avian: 'priced',
  aws: 'priced',
  azure: 'priced',
  baseten: 'priced',
  cerebras: 'priced',
  cloudflare: 'priced',
  cohere: 'priced',
  cursor: 'priced',
  deepinfra: 'unpriced',
  deepseek: 'priced',
  doubleword: 'priced',
  fireworks: 'priced',
  'github-copilot': 'priced',
  google: 'priced',
  groq: 'priced',
  huggingface_cerebras: 'priced',
  'huggingface_fireworks-ai': 'priced',
  huggingface_groq: 'priced',
  huggingface_hyperbolic: 'priced',
  huggingface_nebius: 'priced',
  huggingface_novita: 'priced',
  huggingface_nscale: 'priced',
  huggingface_ovhcloud: 'priced',
  huggingface_publicai: 'priced',
  huggingface_sambanova: 'priced',
  huggingface_together: 'priced',
  minimax: 'priced',
  mistral: 'priced',
  modal: 'priced',
  moonshotai: 'priced',
  novita: 'priced',
  openai: 'priced',
  openrouter: 'priced',
  ovhcloud: 'priced',
  perplexity: 'priced',
  quicksilverpro: 'priced',
  together: 'priced',
  typesafe: 'priced',
  vercel: 'unpriced',
  voyageai: 'priced',
  'x-ai': 'priced',
  zai: 'priced',
  zhipuai: 'priced',
};

const prices = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');

describe('ProviderId', () => {
  it('names each provider of the price data, and the two AI SDK providers it has no prices for', () => {
    const priced = Object.entries(PROVIDERS).filter(([, kind]) => kind === 'priced').map(([id]) => id);
    for (const id of priced) expect(prices.findProvider({ providerId: id })?.id, id).toBe(id);
    for (const id of ['deepinfra', 'vercel']) expect(prices.findProvider({ providerId: id }), id).toBeUndefined();
    // The data has no list of its providers: each declares one API pattern, so their count is the data's size.
    const bundle = readFileSync(requireFromRepo.resolve('@pydantic/genai-prices'), 'utf8');
    expect(bundle.match(/\bapi_pattern:/g)?.length).toBe(priced.length);
  });
});
