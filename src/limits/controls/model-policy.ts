import { ConfigError, describeValue } from '../../errors.js';

/** What a tenant may call: the models allowed (exact ids, or prefixes ending in `*`); no list allows every model. */
export interface TenantPolicy {
  models?: string[];
}

/** Whether the policy's list lets the model through. */
export function modelAllowed(allowed: readonly string[], model: string | undefined): boolean {
  if (model === undefined) return false;
  for (const entry of allowed) {
    if (entry.endsWith('*') ? model.startsWith(entry.slice(0, -1)) : model === entry) return true;
  }
  return false;
}

export function validatePolicy(value: unknown): TenantPolicy {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`setPolicy: expected { models: ['gpt-4o-mini', 'claude-haiku-*'] }, got ${describeValue(value)}`);
  }
  const { models, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw new ConfigError(`setPolicy: unknown option ${JSON.stringify(unknown)}`);
  if (models === undefined) return {};
  // A newline would split an entry in the list as Redis stores it.
  if (!Array.isArray(models) || !models.every((m) => typeof m === 'string' && m.trim() !== '' && !/[\r\n]/.test(m) && m.length <= 256)) {
    throw new ConfigError(`setPolicy: models must be an array of model ids or prefixes ending in '*', got ${describeValue(models)}`);
  }
  return { models: [...new Set(models as string[])] };
}
