import { createHash } from 'node:crypto';

/** What a Stripe meter counts: tokens or cost of usage events, or resolved runs (outcome events). */
export const STRIPE_METER_VALUES = ['total_tokens', 'input_tokens', 'output_tokens', 'cost_micros', 'resolved_runs'] as const;
export type StripeMeterValue = (typeof STRIPE_METER_VALUES)[number];

/** Event fields a meter can carry as dimensions in its payload (the meter's `dimension_payload_keys`). */
export const STRIPE_DIMENSIONS = ['model', 'provider', 'feature', 'endpoint'] as const;
export type StripeDimension = (typeof STRIPE_DIMENSIONS)[number];

export interface StripeMeter {
  /** The meter's `event_name`. */
  eventName: string;
  value: StripeMeterValue;
  dimensions?: StripeDimension[];
}

/** The fields of usage and outcome events a meter reads. */
export interface MeteredEvent {
  type: string;
  event_id: string;
  tenant_id?: string;
  timestamp: string;
  input_tokens?: number;
  output_tokens?: number;
  total_tokens?: number;
  cost_usd?: number;
  outcome?: string;
  model?: string;
  provider?: string;
  feature?: string;
  endpoint?: string;
}

/** Stripe refuses a value of more than 15 significant digits; an integer below this has at most 15. */
const MAX_VALUE = 1e15;

/** Whether the meter counts events of this type. */
export function meterTakes(meter: StripeMeter, eventType: string): boolean {
  return meter.value === 'resolved_runs' ? eventType === 'outcome' : eventType === 'usage';
}

/**
 * The meter's whole-number value for an event: 0 when there is nothing to bill (not sent), undefined when the event's
 * figure cannot be a Stripe value (negative, not finite, or more than 15 significant digits).
 */
export function meterValue(meter: StripeMeter, event: MeteredEvent): number | undefined {
  let value: number | undefined;
  switch (meter.value) {
    case 'resolved_runs':
      return event.outcome === 'resolved' ? 1 : 0;
    case 'cost_micros':
      value = Math.round((event.cost_usd ?? 0) * 1e6);
      break;
    default:
      value = event[meter.value] ?? 0;
  }
  return Number.isSafeInteger(value) && value >= 0 && value < MAX_VALUE ? value : undefined;
}

/** Unique per event and meter, the same on every retry and in every process: Stripe dedupes on it. */
export function meterEventIdentifier(eventId: string, eventName: string): string {
  return createHash('sha256').update(eventId).update('\0').update(eventName).digest('base64url').slice(0, 43);
}

export function meterPayload(meter: StripeMeter, event: MeteredEvent, customer: string, value: number): Record<string, string> {
  const payload: Record<string, string> = { stripe_customer_id: customer, value: String(value) };
  for (const dimension of meter.dimensions ?? []) {
    const label = event[dimension];
    if (label !== undefined) payload[dimension] = label;
  }
  return payload;
}
