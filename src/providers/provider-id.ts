/**
 * A provider as events, manual usage, `prices` keys and `providerHosts` name it: an id of the bundled price data
 * (@pydantic/genai-prices), or one of the two AI SDK providers the data has no prices for (`deepinfra`, and `vercel`
 * for an AI Gateway call whose upstream it cannot name). Every call the agent meters names one of these;
 * test/provider-ids.test.ts keeps the list equal to the data's. An id outside it (a provider of your own, priced
 * through `prices`) is taken at run time: type it with a cast (`'acme' as ProviderId`).
 */
export type ProviderId =
  | 'anthropic'
  | 'arcee'
  | 'avian'
  | 'aws'
  | 'azure'
  | 'baseten'
  | 'cerebras'
  | 'cloudflare'
  | 'cohere'
  | 'cursor'
  | 'deepinfra'
  | 'deepseek'
  | 'doubleword'
  | 'fireworks'
  | 'github-copilot'
  | 'google'
  | 'groq'
  | 'huggingface_cerebras'
  | 'huggingface_fireworks-ai'
  | 'huggingface_groq'
  | 'huggingface_hyperbolic'
  | 'huggingface_nebius'
  | 'huggingface_novita'
  | 'huggingface_nscale'
  | 'huggingface_ovhcloud'
  | 'huggingface_publicai'
  | 'huggingface_sambanova'
  | 'huggingface_together'
  | 'minimax'
  | 'mistral'
  | 'modal'
  | 'moonshotai'
  | 'novita'
  | 'openai'
  | 'openrouter'
  | 'ovhcloud'
  | 'perplexity'
  | 'quicksilverpro'
  | 'together'
  | 'typesafe'
  | 'vercel'
  | 'voyageai'
  | 'x-ai'
  | 'zai'
  | 'zhipuai';

/** A `prices` key: the provider's id, a colon, and the model id (`'openai:gpt-4o'`). */
export type PriceKey = `${ProviderId}:${string}`;
