/** Every built-in patch, by the name the `patches` option, `patch()` and `unpatch()` take. */
export const PATCH_NAMES = [
  'openai',
  'anthropic',
  'google',
  'groq',
  'mistral',
  'bedrock',
  'ai-sdk-openai',
  'ai-sdk-anthropic',
  'ai-sdk-google',
  'ai-sdk-amazon-bedrock',
  'ai-sdk-gateway',
  'ai-sdk-azure',
  'ai-sdk-groq',
  'ai-sdk-mistral',
  'ai-sdk-xai',
  'ai-sdk-deepseek',
  'ai-sdk-openai-compatible',
] as const;

export type PatchName = (typeof PATCH_NAMES)[number];
