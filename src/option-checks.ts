import { ConfigError, describeValue } from './errors.js';

/** Checks of option values: each error names the option (with `at`, its place, e.g. `sinks[1].`) and the value. */

export function oneOf<T extends string>(options: Record<string, unknown>, field: string, allowed: readonly T[], at = ''): T {
  const value = options[field] ?? allowed[0];
  if (!allowed.includes(value as T)) throw new ConfigError(`${at}${field} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describeValue(value)}`);
  return value as T;
}

export function positiveInteger(options: Record<string, unknown>, field: string, fallback: number, at = ''): number {
  const value = options[field];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new ConfigError(`${at}${field} must be a positive integer, got ${describeValue(value)}`);
  }
  return value;
}

export function optionalFunction<T>(options: Record<string, unknown>, field: string, at = ''): T | undefined {
  const value = options[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new ConfigError(`${at}${field} must be a function, got ${describeValue(value)}`);
  return value as T;
}

export function optionalPath(options: Record<string, unknown>, field: string, at = ''): string | undefined {
  const value = options[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw new ConfigError(`${at}${field} must be a file path, got ${describeValue(value)}`);
  return value;
}

export function optionalBoolean(options: Record<string, unknown>, field: string, at = ''): boolean {
  const value = options[field];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new ConfigError(`${at}${field} must be a boolean, got ${describeValue(value)}`);
  return value;
}

/** The url with any credentials masked, for messages. */
export function displayUrl(url: URL): string {
  if (url.username === '' && url.password === '') return url.href;
  const masked = new URL(url.href);
  masked.username = '***';
  masked.password = '';
  return masked.href;
}

export function parseUrl(value: unknown, field = 'url'): URL | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ConfigError(`${field} must be a string, got ${describeValue(value)}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${field} must be an absolute http(s) URL, got a value that does not parse (${value.length} characters)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${field} must use http or https, got protocol ${JSON.stringify(url.protocol)}`);
  }
  return url;
}


export function optionalString(options: Record<string, unknown>, field: string, at = ''): string | undefined {
  const value = options[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(`${at}${field} must be a non-empty string, got ${describeValue(value)}`);
  return value;
}

export function rejectUnknownKeys(options: Record<string, unknown>, known: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(options)) if (!known.has(key)) throw new ConfigError(`unknown ${what} ${JSON.stringify(key)}`);
}
