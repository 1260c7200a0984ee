import { asRecord, type HookTarget, type ParamPath } from './provider.js';

/** The most output a request can produce: its cap (when one can be trusted) times the completions it asks for. */
export interface OutputBound {
  /** A finite positive integer the request sets, else undefined: a negative, fractional or absurd cap is not trusted. */
  cap: number | undefined;
  /** The parameter that caps this request's output: the caller's own when set, else the one strict mode sends. */
  capPath: ParamPath | undefined;
  /**
   * The request sets a cap, trusted or not. An untrusted one is left for the provider to refuse (as it does a negative
   * or fractional max_tokens): the reservation assumes defaultMaxOutputTokens instead.
   */
  capGiven: boolean;
  completions: number;
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
    if (cap !== undefined && cap !== null) return { cap: isCount(cap) ? cap : undefined, capPath: path, capGiven: true, completions };
  }
  return { cap: target.defaultOutputCap, capPath: capPaths[0], capGiven: false, completions };
}

/** A copy of the params with `value` at `path` (each object on the path copied; the caller's objects are never touched). */
export function withValueAt(params: unknown, path: ParamPath, value: unknown): unknown {
  const [key, ...rest] = path;
  if (key === undefined) return value;
  const record = asRecord(params) ?? {};
  return { ...record, [key]: withValueAt(record[key], rest, value) };
}
