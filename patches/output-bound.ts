import { asRecord, type HookTarget, type ParamPath } from './provider.js';

/** The most output a request can produce: its cap (when one can be trusted) times the completions it asks for. */
export interface OutputBound {
  /** A finite positive integer the request sets, else undefined: a negative, fractional or absurd cap is not trusted. */
  cap: number | undefined;
  /** Where a cap goes when strict mode sends one: the caller's own parameter when set (untrusted), else the endpoint's. */
  capPath: ParamPath | undefined;
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
    if (cap !== undefined && cap !== null) return { cap: isCount(cap) ? cap : undefined, capPath: path, completions };
  }
  if (target.defaultOutputCap !== undefined) return { cap: target.defaultOutputCap, capPath: undefined, completions };
  return { cap: undefined, capPath: capPaths[0], completions };
}

/** A copy of the params with `value` at `path` (each object on the path copied; the caller's objects are never touched). */
export function withValueAt(params: unknown, path: ParamPath, value: unknown): unknown {
  const [key, ...rest] = path;
  if (key === undefined) return value;
  const record = asRecord(params) ?? {};
  return { ...record, [key]: withValueAt(record[key], rest, value) };
}
