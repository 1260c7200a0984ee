import { AI_SDK_PATCHES } from './ai-sdk.js';
import { anthropicPatch } from './anthropic.js';
import { bedrockPatch } from './bedrock.js';
import { googlePatch } from './google.js';
import { groqPatch } from './groq.js';
import { openaiPatch } from './openai.js';
import { mistralPatch } from './mistral.js';
import type { ProviderPatch } from './provider.js';

/** `instrument(client)` takes the last patch that accepts a client: groq's OpenAI-shaped clients come after openai's. */
export const BUILT_IN_PATCHES: readonly ProviderPatch[] = [openaiPatch, anthropicPatch, googlePatch, groqPatch, mistralPatch, bedrockPatch, ...AI_SDK_PATCHES];

export const BUILT_IN_PATCH_NAMES: readonly string[] = BUILT_IN_PATCHES.map((p) => p.name);

/** Every package the load hooks watch: nothing else is ever wrapped. */
export const HOOKED_PACKAGE_NAMES: readonly string[] = BUILT_IN_PATCHES.map((p) => p.packageName);
