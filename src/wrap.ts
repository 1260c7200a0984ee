import type { Meter } from './meter.js';
import type { WrapOptions } from './tenants/wrapped-clients.js';

/**
 * `meter.wrap(client, options)` under the names teams coming from per-client wrappers know: the client (OpenAI,
 * AzureOpenAI or OpenAI-compatible; Anthropic; GoogleGenAI) billed to `options.customerId`.
 */
export function wrapOpenAI<T>(client: T, meter: Meter, options: WrapOptions): T {
  return meter.wrap(client, options);
}
export const wrapAnthropic = wrapOpenAI;
export const wrapGoogle = wrapOpenAI;
