/** A Meter option, tenant id or manual event field that cannot be used; the message names the field and the value. */
export class ConfigError extends TypeError {
  override name = 'ConfigError';
}

export type LimitFrequency = 'per_day' | 'per_month';

export interface LimitRefusal {
  tenantId: string;
  frequency: LimitFrequency;
  limitUsd: number;
  /** Settled spend in the window. */
  spentUsd: number;
  /** Held by the tenant's calls in flight until they settle. */
  heldUsd: number;
  /** This call's worst case (its reservation); undefined when its model has no known price. */
  requestUsd: number | undefined;
  resetsAt: Date;
  /** The largest output cap with which this call would fit now, when a smaller cap is what would make it fit. */
  fitsWithOutputCap?: number | undefined;
  /** The request parameter that sets the output cap (max_tokens, max_output_tokens, config.maxOutputTokens, ...). */
  outputCapParam?: string | undefined;
  /** The budget that refused is a feature's or a model's (id or prefix), not the tenant's whole spend. */
  feature?: string | undefined;
  model?: string | undefined;
}

const usd = (value: number): string => `$${value >= 1 ? value.toFixed(2) : Number(value.toPrecision(3)).toString()}`;

function refusalMessage(r: LimitRefusal): string {
  const budget = r.feature !== undefined ? `feature ${JSON.stringify(r.feature)} ` : r.model !== undefined ? `model ${JSON.stringify(r.model)} ` : '';
  const window = `tenant ${JSON.stringify(r.tenantId)}: this call does not fit its ${budget}${r.frequency} spend limit of ${usd(r.limitUsd)}`;
  if (r.requestUsd === undefined) return `${window}: no price is known for its model and unknownModel is 'block'`;
  let fix: string;
  if (r.fitsWithOutputCap !== undefined) fix = `set ${r.outputCapParam ?? 'max_tokens'} to at most ${r.fitsWithOutputCap} to make it fit`;
  else if (r.heldUsd > 0 && r.spentUsd + r.requestUsd <= r.limitUsd) fix = 'it fits once calls in flight settle';
  else fix = `it fits after the window resets at ${r.resetsAt.toISOString()}`;
  return `${window} (${usd(r.spentUsd)} spent, ${usd(r.heldUsd)} held by calls in flight, this call may cost up to ${usd(r.requestUsd)}); ${fix}`;
}

/** Thrown (or delivered through the SDK's own promise) when a call would take a tenant past its spend limit. */
export class LimitExceededError extends Error {
  override name = 'LimitExceededError';
  readonly tenantId: string;
  readonly frequency: LimitFrequency;
  readonly limitUsd: number;
  readonly spentUsd: number;
  readonly heldUsd: number;
  readonly requestUsd: number | undefined;
  readonly resetsAt: Date;
  readonly fitsWithOutputCap: number | undefined;
  /** Set when the budget that refused is a feature's or a model's. */
  readonly feature: string | undefined;
  readonly model: string | undefined;

  constructor(refusal: LimitRefusal) {
    super(refusalMessage(refusal));
    this.tenantId = refusal.tenantId;
    this.frequency = refusal.frequency;
    this.limitUsd = refusal.limitUsd;
    this.spentUsd = refusal.spentUsd;
    this.heldUsd = refusal.heldUsd;
    this.requestUsd = refusal.requestUsd;
    this.resetsAt = refusal.resetsAt;
    this.fitsWithOutputCap = refusal.fitsWithOutputCap;
    this.feature = refusal.feature;
    this.model = refusal.model;
  }
}

/** A call for a model the tenant's policy does not allow (`setPolicy`): refused before any request is sent. */
export class ModelNotAllowedError extends Error {
  override name = 'ModelNotAllowedError';
  constructor(
    readonly tenantId: string,
    /** The model the request asks for; undefined when the request names none. */
    readonly model: string | undefined,
    /** The models the policy allows: exact ids, or prefixes ending in `*`. */
    readonly allowed: readonly string[],
  ) {
    super(`tenant ${JSON.stringify(tenantId)} may not call ${model === undefined ? 'a request without a model' : `model ${JSON.stringify(model)}`}: its policy allows ${allowed.map((m) => JSON.stringify(m)).join(', ') || 'no model'}`);
  }
}

/** A call past one of the tenant's rate limits (`setRateLimit`): refused before any request is sent. */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  constructor(
    readonly tenantId: string,
    /** Which limit: 'requests_per_minute', 'tokens_per_minute' or 'concurrent'. */
    readonly limit: 'requests_per_minute' | 'tokens_per_minute' | 'concurrent',
    readonly limitValue: number,
    /** When the call would fit, as the window slides (for 'concurrent', a suggestion). */
    readonly retryAfterMs: number,
  ) {
    super(`tenant ${JSON.stringify(tenantId)}: this call is over its ${limit.replaceAll('_', ' ')} limit of ${limitValue}; retry after ${retryAfterMs} ms`);
  }
}

/** Renders a user-supplied value for an error message without dumping large or nested data. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
