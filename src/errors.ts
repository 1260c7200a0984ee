/** A Meter option, tenant id or manual event field that cannot be used; the message names the field and the value. */
export class ConfigError extends TypeError {
  override name = 'ConfigError';
}

export type LimitFrequency = 'per_day' | 'per_month';

/** Thrown (or delivered through the SDK's own promise) when a call would take a tenant past its spend limit. */
export class LimitExceededError extends Error {
  override name = 'LimitExceededError';
  readonly tenantId: string;
  readonly frequency: LimitFrequency;
  readonly limitUsd: number;
  readonly spentUsd: number;
  readonly resetsAt: Date;

  constructor(details: { tenantId: string; frequency: LimitFrequency; limitUsd: number; spentUsd: number; resetsAt: Date }) {
    super(
      `tenant ${JSON.stringify(details.tenantId)} is over its ${details.frequency} spend limit ` +
        `($${details.spentUsd.toFixed(6)} of $${details.limitUsd}); resets at ${details.resetsAt.toISOString()}`,
    );
    this.tenantId = details.tenantId;
    this.frequency = details.frequency;
    this.limitUsd = details.limitUsd;
    this.spentUsd = details.spentUsd;
    this.resetsAt = details.resetsAt;
  }
}

/** Renders a user-supplied value for an error message without dumping large or nested data. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
