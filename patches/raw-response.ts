import { requestIdOf, type Observation } from './observe.js';
import type { ResponseFacts } from './provider.js';

/** Splits a complete server-sent-events body into the JSON payloads of its `data:` fields. */
export function* sseDataPayloads(body: string): Generator<unknown> {
  for (const block of body.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
      .join('\n');
    if (data === '' || data === '[DONE]') continue;
    try {
      yield JSON.parse(data);
    } catch {
      // A payload that is not JSON carries no usage.
    }
  }
}

async function readFacts(response: Response, o: Observation): Promise<ResponseFacts> {
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('text/event-stream')) {
    const facts: ResponseFacts = {};
    const readItem = o.target.readStreamItem;
    if (readItem !== undefined) for (const item of sseDataPayloads(await response.text())) readItem(item, facts, false);
    return facts;
  }
  if (type.includes('json')) return o.target.readResponse(await response.json(), o.args);
  if (type.startsWith('text/')) return o.target.readResponse(await response.text(), o.args);
  return o.target.readResponse(undefined, o.args);
}

/**
 * Meters a call whose caller took the raw `Response` (`asResponse()`): reads a clone of the body in the background, so
 * the caller's own body stays unread and theirs to consume.
 */
export function readRawResponse(response: Response, o: Observation): void {
  const requestId = requestIdOf(response, o.requestIdHeader);
  if (!response.ok) {
    o.call.finish({ error: { name: 'APIError', status: response.status }, requestId });
    return;
  }
  let clone: Response;
  try {
    clone = response.clone();
  } catch (fault) {
    o.call.fault(fault);
    o.call.finish({ requestId, partial: true });
    return;
  }
  readFacts(clone, o).then(
    (facts) => o.call.finishInBackground({ ...facts, requestId, partial: facts.usage === undefined }),
    () => o.call.finishInBackground({ requestId, partial: true }),
  );
}
