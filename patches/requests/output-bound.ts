import { asRecord, type HookTarget, type ParamPath } from '../provider.js';
import { withField } from '../../src/fast-objects.js';

/** The most output a request can produce: its cap (when one can be trusted) times the completions it asks for. */
export interface OutputBound {
  /**
   * A finite positive integer the request sets (or the provider's own default), else undefined: a negative, fractional
   * or absurd cap is not trusted, and the reservation assumes defaultMaxOutputTokens instead.
   */
  cap: number | undefined;
  /** The parameter that caps this request's output: the caller's own when set, else the endpoint's. */
  capPath: ParamPath | undefined;
  /**
   * Where strict mode sends the cap it reserved for: set only when the request sets none at all. An untrusted cap is
   * left for the provider to refuse, as it does a negative or fractional max_tokens.
   */
  sendCapAt: ParamPath | undefined;
  completions: number;
}

/** The cap strict mode adds to a request, and where. */
export interface CapToSend {
  path: ParamPath;
  tokens: number;
}

function valueAt(params: unknown, path: ParamPath): unknown {
  let node = params;
  for (const key of path) node = asRecord(node)?.[key];
  return node;
}

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value > 0;

export function readOutputBound(target: HookTarget, params: unknown): OutputBound {
  let completions = 1;
  for (const path of target.completions ?? []) {
    const count = valueAt(params, path);
    if (isCount(count) && count > completions) completions = count;
  }
  const capPaths = target.outputCap ?? [];
  for (const path of capPaths) {
    const cap = valueAt(params, path);
    if (cap !== undefined && cap !== null) return { cap: isCount(cap) ? cap : undefined, capPath: path, sendCapAt: undefined, completions };
  }
  const cap = target.defaultOutputCap;
  return { cap, capPath: capPaths[0], sendCapAt: cap === undefined ? capPaths[0] : undefined, completions };
}

/** A copy of the params with the cap in them (each object on the path copied; the caller's objects are never touched). */
export function withCap(params: unknown, cap: CapToSend): unknown {
  return withValueAt(params, cap.path, cap.tokens);
}

function withValueAt(params: unknown, path: ParamPath, value: unknown): unknown {
  const [key, ...rest] = path;
  if (key === undefined) return value;
  const record = asRecord(params) ?? {};
  const prototype = Object.getPrototypeOf(record) as object | null;
  if (prototype !== Object.prototype && prototype !== null && !Array.isArray(record)) {
    // A request object of the SDK's own class (a smithy Command, whose `input` is the request): copied as an instance
    // of that class, so that the SDK still takes it.
    const copy = Object.assign(Object.create(prototype) as Record<string, unknown>, record);
    copy[key] = withValueAt(record[key], rest, value);
    return copy;
  }
  return withField(record, key, withValueAt(record[key], rest, value));
}
