/** The token counts a report sums, as the usage event names them: input and output, then the categories priced apart. */
export const TOKEN_FIELDS = [
  'input_tokens',
  'output_tokens',
  'cached_tokens',
  'cache_creation_tokens',
  'reasoning_tokens',
  'audio_input_tokens',
  'audio_output_tokens',
] as const;

export type TokenField = (typeof TOKEN_FIELDS)[number];
export type TokenCounts = Record<TokenField, number>;

/** How a call ended, as far as a report tells them apart. */
export type CallStatus = 'ok' | 'refused' | 'errored';

/** One metered call of a usage file: the fields of a UsageEvent a report reads. */
export interface ReportedCall {
  type: 'usage';
  timestampMs: number;
  tenantId: string | undefined;
  provider: string;
  model: string;
  feature: string | undefined;
  tokens: TokenCounts;
  costNano: number;
  /** Undefined when the event books no revenue (as opposed to a revenue of 0). */
  revenueNano: number | undefined;
  status: CallStatus;
  partial: boolean;
}

/** A run's outcome (`meter.resolve`): revenue, not a call. */
export interface ReportedOutcome {
  type: 'outcome';
  timestampMs: number;
  tenantId: string | undefined;
  revenueNano: number;
}

export type ReportEvent = ReportedCall | ReportedOutcome;
