import { anthropicPatch } from './anthropic.js';
import { googlePatch } from './google.js';
import { openaiPatch } from './openai.js';
import type { ProviderPatch } from './provider.js';

export const BUILT_IN_PATCHES: readonly ProviderPatch[] = [openaiPatch, anthropicPatch, googlePatch];

export const BUILT_IN_PATCH_NAMES: readonly string[] = BUILT_IN_PATCHES.map((p) => p.name);

/** Every package the load hooks watch: nothing else is ever wrapped. */
export const HOOKED_PACKAGE_NAMES: readonly string[] = BUILT_IN_PATCHES.map((p) => p.packageName);
