import { stringField, type HookTarget } from './provider.js';

/** How a billable call the agent cannot price is read: its requested model, and no usage (see HookTarget.unpriced). */
export const unpricedCall: Pick<HookTarget, 'unpriced' | 'readRequest' | 'readResponse'> = {
  unpriced: true,
  readRequest: (args) => ({ model: stringField(args[0], 'model'), stream: false }),
  readResponse: () => ({ usage: {} }),
};
