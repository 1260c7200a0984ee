/**
 * The agent's only output channel. Lines never carry prompt or completion text (events hold counts only) and
 * pass through `redact` so that a configured secret cannot leak through an error message either.
 */
export class AgentLog {
  private readonly secrets: string[];
  private readonly warned = new Set<string>();

  constructor(
    readonly debugEnabled: boolean,
    secrets: Array<string | undefined>,
  ) {
    this.secrets = secrets.filter((s): s is string => typeof s === 'string' && s.length >= 4);
  }

  debug(message: string): void {
    if (this.debugEnabled) process.stderr.write(`[llm-meter] ${this.redact(message)}\n`);
  }

  warn(message: string): void {
    process.stderr.write(`[llm-meter] warning: ${this.redact(message)}\n`);
  }

  /** Warns once per key for the life of this log: faults that repeat on every call must not flood stderr. */
  warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.warn(message);
  }

  /** A debug line once per key: diagnostics that would otherwise repeat on every call. */
  debugOnce(key: string, message: string): void {
    if (!this.debugEnabled || this.warned.has(key)) return;
    this.warned.add(key);
    this.debug(message);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return out;
  }
}

/** Names an error without its message: provider messages can quote the request, so only type and status leave. */
export function describeError(err: unknown): string {
  if (err === null || typeof err !== 'object') return typeof err;
  const e = err as { name?: unknown; status?: unknown; statusCode?: unknown; code?: unknown; constructor?: { name?: string } };
  const name = typeof e.name === 'string' && e.name !== 'Error' ? e.name : (e.constructor?.name ?? 'Error');
  if (typeof e.status === 'number') return `${name}: ${e.status}`;
  // Speakeasy SDKs (@mistralai/mistralai) name the HTTP status `statusCode`.
  if (typeof e.statusCode === 'number') return `${name}: ${e.statusCode}`;
  if (typeof e.code === 'string' && /^[A-Z_]+$/.test(e.code)) return `${name}: ${e.code}`;
  return name;
}
