import { resolveConfig, type MeterOptions } from '../config.js';
import { ConfigError } from '../errors.js';
import { BUILT_IN_PATCH_NAMES } from '../../patches/index.js';

type Env = Readonly<Record<string, string | undefined>>;

/** How a variable's text becomes an option value: left as text, or read as a number, a yes/no or a comma list. */
type Reading = 'text' | 'number' | 'boolean' | 'list' | 'numbers';

/** Where each variable goes in the Meter's options (a dotted path for the limit store's). */
const VARIABLES: ReadonlyArray<readonly [name: string, path: string, reading: Reading]> = [
  ['LLM_METER_URL', 'url', 'text'],
  ['LLM_METER_API_KEY', 'apiKey', 'text'],
  ['LLM_METER_FILE', 'file', 'text'],
  ['LLM_METER_FORMAT', 'format', 'text'],
  ['LLM_METER_FLUSH_INTERVAL', 'flushInterval', 'number'],
  ['LLM_METER_MAX_BATCH_SIZE', 'maxBatchSize', 'number'],
  ['LLM_METER_MAX_QUEUE_SIZE', 'maxQueueSize', 'number'],
  ['LLM_METER_REQUEST_TIMEOUT', 'requestTimeout', 'number'],
  ['LLM_METER_SHUTDOWN_TIMEOUT', 'shutdownTimeout', 'number'],
  ['LLM_METER_OUTBOX', 'outbox', 'text'],
  ['LLM_METER_DEBUG', 'debug', 'boolean'],
  ['LLM_METER_RAISE_ON_ERROR', 'raiseOnError', 'boolean'],
  ['LLM_METER_PATCHES', 'patches', 'list'],
  ['LLM_METER_UNKNOWN_MODEL', 'unknownModel', 'text'],
  ['LLM_METER_ENFORCEMENT', 'enforcement', 'text'],
  ['LLM_METER_REQUIRE_TENANT', 'requireTenant', 'boolean'],
  ['LLM_METER_TIMEZONE', 'timezone', 'text'],
  ['LLM_METER_DEFAULT_MAX_OUTPUT_TOKENS', 'defaultMaxOutputTokens', 'number'],
  ['LLM_METER_THRESHOLDS', 'thresholds', 'numbers'],
  ['LLM_METER_THRESHOLD_WEBHOOK', 'thresholdWebhook', 'text'],
  ['LLM_METER_OPEN_TELEMETRY', 'openTelemetry', 'boolean'],
  ['LLM_METER_DEFAULT_LIMIT_USD', 'defaultLimit.limitUsd', 'number'],
  ['LLM_METER_DEFAULT_LIMIT_FREQUENCY', 'defaultLimit.frequency', 'text'],
  ['LLM_METER_REDIS_URL', 'limits.redis', 'text'],
  ['LLM_METER_REDIS_KEY_PREFIX', 'limits.keyPrefix', 'text'],
  ['LLM_METER_LIMITS_URL', 'limits.url', 'text'],
  ['LLM_METER_LIMITS_API_KEY', 'limits.apiKey', 'text'],
  ['LLM_METER_FAIL_MODE', 'limits.failMode', 'text'],
];

export const ENVIRONMENT_VARIABLES: readonly string[] = VARIABLES.map(([name]) => name);

/**
 * LLM_METER_* variables the agent does not know: each is warned about (a misspelt one would otherwise go unnoticed),
 * never refused (another tool, or a later version of the agent, may set one).
 */
export function unknownVariables(env: Env = process.env): string[] {
  return Object.keys(env).filter((name) => name.startsWith('LLM_METER_') && !ENVIRONMENT_VARIABLES.includes(name));
}

export const unknownVariableWarning = (name: string): string => `unknown environment variable ${name}, ignored (known: ${ENVIRONMENT_VARIABLES.join(', ')})`;

const YES = new Set(['1', 'true', 'yes', 'on']);
const NO = new Set(['0', 'false', 'no', 'off', '']);

/** Whether a yes/no variable says yes. */
export const saysYes = (text: string | undefined): boolean => YES.has(text?.trim().toLowerCase() ?? '');

/** A value the options' own checks then judge: what cannot be read as asked is passed on as text, and refused there. */
function read(text: string, reading: Reading): unknown {
  const trimmed = text.trim();
  switch (reading) {
    case 'text':
      return text;
    case 'number':
      return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : text;
    case 'boolean':
      return saysYes(trimmed) ? true : NO.has(trimmed.toLowerCase()) ? false : text;
    case 'list':
      return trimmed.split(',').map((item) => item.trim()).filter((item) => item !== '');
    case 'numbers':
      return trimmed.split(',').map((item) => read(item, 'number'));
  }
}

function place(options: Record<string, unknown>, path: string, value: unknown): void {
  const [head, key] = path.split('.') as [string, string | undefined];
  if (key === undefined) options[head] = value;
  else options[head] = { ...(options[head] as Record<string, unknown> | undefined), [key]: value };
}

/**
 * The Meter options the LLM_METER_* variables set (none when no known one is set), each checked as the option it sets:
 * an error names the variable. Variables of an option in `setInCode` are left out: the code's value wins.
 */
export function optionsFromEnvironment(env: Env = process.env, setInCode: ReadonlySet<string> = new Set()): MeterOptions | undefined {
  const options: Record<string, unknown> = {};
  let set = false;
  for (const [name, path, reading] of VARIABLES) {
    if (env[name] === undefined) continue;
    set = true;
    if (setInCode.has(path.split('.')[0]!)) continue;
    const value = read(env[name]!, reading);
    place(options, path, value);
    // Checked alone, so that the error names this variable; what takes several (a limit store, a default limit) below.
    if (!path.includes('.')) checked({ [path]: value }, name);
  }
  if (!set) return undefined;
  if (options.limits !== undefined && !('redis' in (options.limits as object)) && !('url' in (options.limits as object))) {
    throw new ConfigError('LLM_METER_FAIL_MODE, LLM_METER_REDIS_KEY_PREFIX and LLM_METER_LIMITS_API_KEY need LLM_METER_REDIS_URL or LLM_METER_LIMITS_URL');
  }
  if (options.defaultLimit !== undefined) checked({ defaultLimit: options.defaultLimit }, 'LLM_METER_DEFAULT_LIMIT_USD and LLM_METER_DEFAULT_LIMIT_FREQUENCY');
  checked(options, 'the LLM_METER_* variables');
  return options as MeterOptions;
}

function checked(options: Record<string, unknown>, source: string): void {
  try {
    resolveConfig(options as MeterOptions, BUILT_IN_PATCH_NAMES);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`);
    throw err;
  }
}
