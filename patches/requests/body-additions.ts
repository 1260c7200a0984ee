import { asRecord } from '../provider.js';
import { withField } from '../../src/fast-objects.js';

/**
 * Fields the agent sends in a request on its own account (`stream_options.include_usage`, strict mode's output cap),
 * carried in the request's options under this key to where the SDK encodes the body, and merged into the JSON there:
 * the object the SDK serialises stays the caller's own (SDK helpers observe its serialisation by identity), and the
 * caller's object is never changed.
 */
export const BODY_ADDITIONS = Symbol.for('llm-meter.body-additions');

function withJsonField(json: string, key: string, callerValue: unknown, value: unknown): string | undefined {
  const added = `"${key}":${JSON.stringify(value)}`;
  if (callerValue === undefined) return json === '{}' ? `{${added}}` : `${json.slice(0, -1)},${added}}`;
  // The caller's own value, as the serialiser wrote it: replaced only when it is found exactly once.
  const written = `"${key}":${JSON.stringify(callerValue)}`;
  const at = json.indexOf(written);
  if (at === -1 || json.indexOf(written, at + 1) !== -1) return undefined;
  return json.slice(0, at) + added + json.slice(at + written.length);
}

/** The patched body encoder (`buildBody({ options })`): what the SDK encoded, with the request's additions. */
export function encodeWithAdditions(original: Function, client: unknown, args: unknown[]): unknown {
  const encoded = Reflect.apply(original, client, args) as { body?: unknown } | undefined;
  const options = asRecord(asRecord(args[0])?.options);
  // Most requests carry nothing of the agent's.
  const fields = asRecord((options as Record<symbol, unknown> | undefined)?.[BODY_ADDITIONS]);
  if (fields === undefined) return encoded;
  const body = encodedWithAdditions(fields, asRecord(options?.body), encoded?.body);
  return body === undefined ? encoded : withField(encoded, 'body', body);
}

/**
 * For an SDK build with no body encoder to hook (openai 4 serialises `options.body` inside `buildRequest`, together
 * with the headers and the agent; the hooked encoder is `buildBody`, from openai 5): the request's options with the
 * agent's fields merged into the body as the SDK would serialise it (its JSON form, so `toJSON` is honoured), a new
 * object in the caller's object's place. Such a build observes no request body by identity (openai 7's request-body
 * observers are why newer builds get their fields at the encoder), and the caller's object is never changed.
 */
export function withBodyAdditionsInline(options: unknown): unknown {
  if (typeof (options as PromiseLike<unknown> | undefined)?.then === 'function') return Promise.resolve(options).then(withBodyAdditionsInline);
  const record = asRecord(options);
  const fields = asRecord((record as Record<symbol, unknown> | undefined)?.[BODY_ADDITIONS]);
  if (record === undefined || fields === undefined || !isJsonBody(record.body)) return options;
  let serialised: Record<string, unknown> | undefined;
  try {
    serialised = asRecord(JSON.parse(JSON.stringify(record.body)));
  } catch {
    // A body the SDK cannot serialise either fails there, as it would without the agent.
  }
  if (serialised === undefined) return options;
  for (const [key, value] of Object.entries(fields)) serialised[key] = mergedField(serialised[key], value);
  return withField(record, 'body', serialised);
}

/** A body the SDK sends as JSON: not bytes, a Blob or a multipart form (openai 4's `MultipartBody`). */
function isJsonBody(body: unknown): boolean {
  const record = asRecord(body);
  if (record === undefined || ArrayBuffer.isView(body) || body instanceof ArrayBuffer) return false;
  return typeof record.arrayBuffer !== 'function' && (record as Record<symbol, unknown>)[Symbol.toStringTag] !== 'MultipartBody';
}

/** The agent's value for a field, merged into the caller's when both are objects (`stream_options`). */
function mergedField(callerValue: unknown, value: unknown): unknown {
  return asRecord(value) !== undefined && asRecord(callerValue) !== undefined ? Object.assign({}, callerValue, value) : value;
}

/** The encoded body with the agent's fields added to the caller's, or undefined when they cannot be added. */
function encodedWithAdditions(fields: Record<string, unknown>, record: Record<string, unknown> | undefined, encoded: unknown): string | undefined {
  if (record === undefined || typeof encoded !== 'string' || !encoded.startsWith('{') || !encoded.endsWith('}')) return undefined;
  let json: string | undefined = encoded;
  for (const [key, value] of Object.entries(fields)) {
    const callerValue = record[key];
    json = withJsonField(json, key, callerValue, mergedField(callerValue, value));
    if (json === undefined) return undefined;
  }
  return json;
}
