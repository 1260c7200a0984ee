/** What a sink needs of an event to put it on the wire: usage and outcome events both have these. */
export interface WireEvent {
  /** 'usage' or 'outcome'. */
  type: string;
  event_id: string;
  tenant_id?: string;
  timestamp: string;
}

export interface CloudEventNaming {
  /** The same in every process of the app, so that a redelivery from another process is deduplicated (id + source). */
  source: string;
  /** The subject of events without a tenant: some receivers (OpenMeter) refuse an event that has none. */
  subject: string;
  /** CloudEvents `type` per event type, e.g. `{ usage: 'llm.usage', outcome: 'llm.outcome' }`. */
  types: Readonly<Record<string, string>>;
}

/** One event as a CloudEvents 1.0 structured event, the event itself in `data`. */
export function toCloudEvent(event: WireEvent, naming: CloudEventNaming): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: event.event_id,
    source: naming.source,
    type: naming.types[event.type] ?? `llm.${event.type}`,
    subject: event.tenant_id ?? naming.subject,
    time: event.timestamp,
    datacontenttype: 'application/json',
    data: event,
  };
}
