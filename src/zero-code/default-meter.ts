import { Meter } from '../meter.js';
import { optionsFromEnvironment, saysYes, unknownVariables, unknownVariableWarning } from './environment.js';

/** On the global object, so that every copy of the agent in the process (the register hook's, the app's) shares it. */
const DEFAULT_METER = Symbol.for('llm-meter.default-meter');
type WithDefault = typeof globalThis & { [DEFAULT_METER]?: Meter };

/**
 * The process's default Meter: the one `--import` / `--require llm-meter/register` made from the LLM_METER_* variables,
 * or, on the first call without it, one made now from them (patching every provider SDK, as the register hook does).
 * Set limits and policies on it, and scope its calls with `forTenant` or its middleware.
 */
export function getMeter(): Meter {
  const global = globalThis as WithDefault;
  return (global[DEFAULT_METER] ??= startMeter(optionsFromEnvironment()));
}

/**
 * For the register hook: with any LLM_METER_* variable set, the default Meter is made and patches everything; without
 * one, nothing happens (the app makes its own Meter). A bad variable is reported and the app runs unmetered, unless
 * LLM_METER_RAISE_ON_ERROR asks for the error to be thrown.
 */
export function startFromEnvironment(env: Readonly<Record<string, string | undefined>> = process.env): void {
  for (const name of unknownVariables(env)) process.stderr.write(`[llm-meter] warning: ${unknownVariableWarning(name)}\n`);
  let options;
  try {
    options = optionsFromEnvironment(env);
  } catch (err) {
    if (saysYes(env.LLM_METER_RAISE_ON_ERROR)) throw err;
    process.stderr.write(`[llm-meter] error: ${err instanceof Error ? err.message : String(err)}; nothing is metered\n`);
    return;
  }
  if (options === undefined) return;
  const global = globalThis as WithDefault;
  global[DEFAULT_METER] ??= startMeter(options);
}

function startMeter(options: ConstructorParameters<typeof Meter>[0]): Meter {
  const meter = new Meter(options);
  meter.patchAll();
  return meter;
}
