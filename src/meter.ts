import { performance } from 'node:perf_hooks';
import { BUILT_IN_PATCHES, BUILT_IN_PATCH_NAMES } from '../patches/index.js';
import { MeteredCall, type CallSink } from '../patches/call.js';
import type { RequestFacts } from '../patches/provider.js';
import { interceptCall } from '../patches/intercept.js';
import { gatedOptions } from '../patches/request-gate.js';
import { objectAt, type ProviderPatch } from '../patches/provider.js';
import { unwrapMethod, wrapMethod, type WrapOutcome, type WrappedMethod } from '../patches/wrap-method.js';
import { hostname } from 'node:os';
import { Batcher, type BatchSender } from '../transport/batcher.js';
import { FileSender } from '../transport/file-sender.js';
import { HttpSender } from '../transport/http-sender.js';
import { BoundedQueue } from '../transport/queue.js';
import { displayUrl, resolveConfig, type MeterOptions, type ResolvedConfig } from './config.js';
import { ConfigError, describeValue, type LimitFrequency } from './errors.js';
import { buildEvent, type CallOutcome, type CallStart, type UsageEvent } from './event.js';
import { AgentLog, describeError } from './log.js';
import { joinExitFlush, leaveExitFlush, type ExitParticipant } from './exit-flush.js';
import { MemoryLimitStore } from './memory-limit-store.js';
import { RedisLimitStore } from './redis-limit-store.js';
import { BackendLimitStore } from './backend-limit-store.js';
import { captureRequiredModules, importFromAppRoot, installRequireHook } from './module-hooks.js';
import { toUsd } from './limit-store.js';
import { PriceBook, type PriceQuote } from './pricing.js';
import { SpendLimits, type SetLimitInput, type WindowReport } from './spend-limits.js';
import { WindowCalendar } from './windows.js';
import { onModuleLoaded, sdkModules, type LoadedSdkModule } from './sdk-modules.js';
import { currentTenant, tenantStore, validateTags, validateTenantId, type TenantContext } from './tenant.js';
import { reportedCost, validateManualEvent, type ManualUsage } from './manual-event.js';

export interface ScopeOptions {
  /** Free-form labels copied onto every event of the scope (e.g. feature, user tier). */
  tags?: Record<string, string>;
}

export class Meter implements CallSink {
  private readonly config: ResolvedConfig;
  private readonly log: AgentLog;
  private readonly prices: PriceBook;
  private readonly limits: SpendLimits;
  private readonly limitStore: MemoryLimitStore | RedisLimitStore | BackendLimitStore;
  /** Where events go: the ingest (when `url` is set) and the usage file (when `file` is set). */
  private readonly deliveries: Batcher<UsageEvent>[] = [];
  private readonly usageFile: { sender: FileSender; batcher: Batcher<UsageEvent> } | undefined;
  private readonly exitParticipant: ExitParticipant;
  private recordedEvents = 0;
  private readonly wrapped = new Map<string, WrappedMethod[]>();
  private readonly enabledProviders = new Set<string>();
  private stopListening: (() => void) | undefined;
  private closed = false;
  /** Faults inside the agent, swallowed (unless raiseOnError) and counted. */
  faults = 0;

  constructor(options: MeterOptions = {}) {
    this.config = resolveConfig(options, BUILT_IN_PATCH_NAMES);
    const { limits: limitsConfig } = this.config;
    const limitsKey = limitsConfig?.kind === 'backend' ? limitsConfig.apiKey : undefined;
    this.log = new AgentLog(this.config.debug, [this.config.apiKey, this.config.url?.password, limitsKey]);
    const excludesCache = new Set(BUILT_IN_PATCHES.filter((p) => p.inputExcludesCache === true).map((p) => p.name));
    this.prices = new PriceBook(
      this.config.prices,
      (provider) => excludesCache.has(provider),
      (provider, model) => this.log.debug(`no price known for ${provider} model ${JSON.stringify(model)}: its events carry price_unknown`),
    );
    const { limits } = this.config;
    this.limitStore =
      limits === undefined
        ? new MemoryLimitStore()
        : limits.kind === 'redis'
          ? new RedisLimitStore({ ...limits, clock: this.config.clock }, this.log)
          : new BackendLimitStore({ ...limits, clock: this.config.clock }, this.log);
    this.limits = new SpendLimits(this.limitStore, new WindowCalendar(this.config.timezone), this.prices, this.config);
    const { url, file } = this.config;
    if (url !== undefined) {
      const source = `//llm-meter/${hostname()}/${process.pid}`;
      this.deliver(new HttpSender({ url, apiKey: this.config.apiKey, timeoutMs: this.config.requestTimeout, format: this.config.format, source }));
      this.log.debug(`delivering to ${displayUrl(url)} every ${this.config.flushInterval} ms`);
      if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
        this.log.warn(`url ${displayUrl(url)} is plain http to another host: usage data and the api key travel unencrypted`);
      }
    }
    if (file !== undefined) {
      const sender = new FileSender(file);
      this.usageFile = { sender, batcher: this.deliver(sender) };
    }
    this.exitParticipant = {
      undelivered: () => this.deliveries.reduce((n, d) => n + d.undelivered, 0),
      recorded: () => this.recordedEvents,
      drain: (deadline) => Promise.all(this.deliveries.map((d) => d.drainUntil(deadline))).then(() => undefined),
      writeNow: () => this.usageFile?.sender.sendNow(this.usageFile.batcher.takeAll()),
      shutdownTimeout: this.config.shutdownTimeout,
    };
    if (this.deliveries.length > 0 && this.config.handleExit) joinExitFlush(this.exitParticipant);
  }

  private deliver(sender: BatchSender<UsageEvent>): Batcher<UsageEvent> {
    const batcher = new Batcher<UsageEvent>(new BoundedQueue<UsageEvent>(this.config.maxQueueSize), sender, {
      flushInterval: this.config.flushInterval,
      maxBatchSize: this.config.maxBatchSize,
      maxQueueSize: this.config.maxQueueSize,
      backoff: { baseMs: 200, maxMs: 30_000 },
      onError: (err) => this.reportFlushError(err),
    });
    batcher.start();
    this.deliveries.push(batcher);
    return batcher;
  }

  // ---- patching --------------------------------------------------------------------------------------------------

  /** Patches every configured provider SDK: each build and copy loaded so far, and each one that loads later. */
  patchAll(): void {
    for (const name of this.config.patches) this.patch(name);
  }

  patch(name: string): void {
    const provider = this.provider(name);
    this.guard(() => {
      this.enabledProviders.add(provider.name);
      installRequireHook();
      captureRequiredModules();
      this.stopListening ??= onModuleLoaded((loaded) => this.patchLoadedModule(loaded));
      for (const loaded of sdkModules.modules) this.patchLoadedModule(loaded);
      importFromAppRoot().catch((err: unknown) => this.noteFault(err));
    });
  }

  unpatch(name: string): void {
    const provider = this.provider(name);
    this.enabledProviders.delete(provider.name);
    for (const method of this.wrapped.get(provider.name) ?? []) unwrapMethod(method);
    this.wrapped.delete(provider.name);
  }

  unpatchAll(): void {
    for (const name of [...this.enabledProviders]) this.unpatch(name);
    this.stopListening?.();
    this.stopListening = undefined;
  }

  /**
   * Patches exactly the SDK build and copy behind one client (bundled apps, unusual installs, apps that cannot use
   * --import). Returns the client.
   */
  instrument<T>(client: T): T {
    const provider = BUILT_IN_PATCHES.find((p) => p.isClient(client));
    if (provider === undefined) {
      throw new ConfigError(`instrument: not a client of a supported SDK (${BUILT_IN_PATCH_NAMES.join(', ')}), got ${describeValue(client)}`);
    }
    this.guard(() => {
      this.enabledProviders.add(provider.name);
      this.wrapRequestMethod(provider, Object.getPrototypeOf(client) as object);
      for (const target of provider.targets) {
        const resource = objectAt(client, target.clientPath);
        if (resource === null || typeof resource !== 'object') continue;
        this.wrapTarget(provider, target, Object.getPrototypeOf(resource) as object);
      }
    });
    return client;
  }

  private provider(name: string): ProviderPatch {
    const provider = BUILT_IN_PATCHES.find((p) => p.name === name);
    if (provider === undefined || !this.config.patches.includes(name)) {
      throw new ConfigError(`unknown or disabled provider ${describeValue(name)} (enabled: ${this.config.patches.join(', ')})`);
    }
    return provider;
  }

  private patchLoadedModule(loaded: LoadedSdkModule): void {
    for (const provider of BUILT_IN_PATCHES) {
      if (!this.enabledProviders.has(provider.name) || !provider.modules.includes(loaded.moduleName)) continue;
      const root = provider.root(loaded.moduleExports);
      if (typeof root === 'function') this.wrapRequestMethod(provider, root.prototype as object);
      for (const target of provider.targets) {
        const resourceClass = objectAt(root, target.classPath);
        if (typeof resourceClass === 'function') this.wrapTarget(provider, target, resourceClass.prototype as object);
      }
    }
  }

  private wrapTarget(provider: ProviderPatch, target: ProviderPatch['targets'][number], prototype: object): void {
    this.remember(provider, wrapMethod(prototype, target.method, this, (sink, original, thisArg, args) => interceptCall(provider, target, sink, original, thisArg, args)));
  }

  /** Where a request can wait for an asynchronous spend check (see patches/request-gate.ts). */
  private wrapRequestMethod(provider: ProviderPatch, prototype: object): void {
    if (provider.requestMethod === undefined) return;
    this.remember(
      provider,
      wrapMethod(prototype, provider.requestMethod, this, (_sink, original, thisArg, [method, path, options, ...rest]) =>
        Reflect.apply(original, thisArg, [method, path, gatedOptions(options), ...rest]),
      ),
    );
  }

  private remember(provider: ProviderPatch, outcome: WrapOutcome): void {
    if ('wrapped' in outcome) {
      const list = this.wrapped.get(provider.name) ?? [];
      if (!list.includes(outcome.wrapped)) list.push(outcome.wrapped);
      this.wrapped.set(provider.name, list);
    }
  }

  // ---- tenants ---------------------------------------------------------------------------------------------------

  /** Runs `fn` with every LLM call inside it billed to `tenantId`; returns what `fn` returns. Innermost scope wins. */
  forTenant<R>(tenantId: string, fn: () => R, options: ScopeOptions = {}): R {
    if (typeof fn !== 'function') throw new ConfigError(`forTenant: fn must be a function, got ${describeValue(fn)}`);
    return tenantStore.run(this.tenantContext(tenantId, options), fn);
  }

  /** Bills every call for the rest of the current async context to `tenantId` (for middleware). */
  setTenant(tenantId: string, options: ScopeOptions = {}): void {
    tenantStore.enterWith(this.tenantContext(tenantId, options));
  }

  private tenantContext(tenantId: string, options: ScopeOptions): TenantContext {
    const tags = validateTags(options?.tags);
    return tags === undefined ? { tenantId: validateTenantId(tenantId) } : { tenantId: validateTenantId(tenantId), tags };
  }

  // ---- spend limits ----------------------------------------------------------------------------------------------

  /** Sets a tenant's limit for a calendar window (a tenant may have a daily and a monthly one); applies to the next call. */
  setLimit(tenantId: string, limit: SetLimitInput): Promise<void> {
    return this.limits.setLimit(tenantId, limit);
  }

  removeLimit(tenantId: string, frequency: LimitFrequency): Promise<void> {
    return this.limits.removeLimit(tenantId, frequency);
  }

  /** Per limited window: spent and reserved so far, the limit, and when the window resets. */
  getUsage(tenantId: string): Promise<WindowReport[]> {
    return this.limits.usage(tenantId);
  }

  // ---- events ----------------------------------------------------------------------------------------------------

  /** Records usage the agent cannot see (another SDK, a batch job, a self-hosted model). */
  trackManually(usage: ManualUsage): UsageEvent {
    const event = validateManualEvent(usage, currentTenant());
    this.stampCost(event, this.prices.quote(event, reportedCost(usage)), undefined);
    this.emit(event);
    return event;
  }

  begin(provider: string, endpoint: string, request: RequestFacts, args: readonly unknown[]): MeteredCall {
    const start: CallStart = {
      provider,
      endpoint,
      requestedModel: request.model,
      stream: request.stream,
      tenant: currentTenant(),
      startedAt: performance.now(),
      startedAtWall: Date.now(),
      maxOutputTokens: request.maxOutputTokens,
      args,
    };
    const admission = this.limits.admit(start);
    if (!(admission instanceof Promise)) {
      start.reservation = admission.reservation;
      return new MeteredCall(this, start, admission.refusal);
    }
    const admitted = admission.then(({ reservation, refusal }) => {
      if (refusal !== undefined) throw refusal;
      start.reservation = reservation;
    });
    admitted.catch(() => undefined);
    return new MeteredCall(this, start, undefined, admitted);
  }

  record(start: CallStart, outcome: CallOutcome): void {
    try {
      const event = buildEvent(start, outcome, performance.now());
      this.price(event, start);
      this.emit(event);
    } catch (err) {
      this.fault(err);
    }
  }

  /**
   * Stamps the cost, and settles the call's reservation at it. A stream cut short before its final usage (early break,
   * abort) is costed at its reservation-sized estimate when that is higher: over-counting is the safe side of a budget.
   */
  private price(event: UsageEvent, start: CallStart): void {
    const quote = this.prices.quote(event);
    let estimate: number | undefined;
    if (event.partial === true && event.error === undefined) {
      const reserved = start.reservation !== undefined ? toUsd(start.reservation.amountNano) : this.limits.estimateUsd(start);
      if (reserved !== undefined && reserved > quote.costUsd) estimate = reserved;
    }
    const cost = this.stampCost(event, quote, estimate);
    if (start.reservation !== undefined) this.limits.settle(start.reservation, cost, event.event_id);
    start.args = [];
  }

  private stampCost(event: UsageEvent, quote: PriceQuote, estimate: number | undefined): number {
    event.cost_usd = estimate ?? quote.costUsd;
    event.price_source = quote.source;
    if (estimate !== undefined) event.cost_estimated = true;
    if (quote.unknown === true) event.price_unknown = true;
    if (quote.inconsistent === true) event.price_inconsistent = true;
    return event.cost_usd;
  }

  private emit(event: UsageEvent): void {
    if (this.log.debugEnabled) this.log.debug(`event ${JSON.stringify(event)}`);
    if (this.config.onEvent !== undefined) {
      try {
        this.config.onEvent(event);
      } catch (err) {
        this.fault(err);
      }
    }
    if (this.closed) return;
    this.recordedEvents++;
    for (const delivery of this.deliveries) delivery.add(event);
  }

  fault(err: unknown): void {
    this.noteFault(err);
    if (this.config.raiseOnError) throw err;
  }

  /** Counts and logs a fault without ever throwing: for background work that has no caller to throw to. */
  private noteFault(err: unknown): void {
    this.faults++;
    this.log.warnOnce(`fault:${describeError(err)}`, `internal fault (${describeError(err)}); the app's call was not affected`);
  }

  private guard(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.fault(err);
    }
  }

  // ---- delivery --------------------------------------------------------------------------------------------------

  private reportFlushError(err: Error): void {
    const safe = new Error(this.log.redact(err.message));
    safe.name = err.name;
    if (this.config.onFlushError !== undefined) {
      try {
        this.config.onFlushError(safe);
      } catch (hookErr) {
        this.fault(hookErr);
      }
    } else {
      this.log.warnOnce(`flush:${safe.message}`, `could not deliver usage events: ${safe.message}`);
    }
  }

  /** Sends every queued event now (each batch once; a failed batch stays queued for a retry). */
  async flush(): Promise<void> {
    await Promise.all(this.deliveries.map((d) => d.flush()));
  }

  /**
   * Unpatches, delivers what is queued (retrying, for at most `shutdownTimeout`), and stops the timers. Events recorded
   * after this are not delivered.
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.unpatchAll();
    await this.exitParticipant.drain(Date.now() + this.config.shutdownTimeout);
    this.closed = true;
    for (const delivery of this.deliveries) delivery.stop();
    leaveExitFlush(this.exitParticipant);
    if (this.limitStore instanceof RedisLimitStore) await this.limitStore.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * Delivery so far (of the ingest, or of the usage file when there is no url): events not delivered yet (queued or in a
   * batch being sent), sent, dropped (queue overflow, or refused for good by the server), retried POSTs, and batches
   * given up on.
   */
  stats(): { queued: number; sent: number; dropped: number; retried: number; failedBatches: number } {
    const primary = this.deliveries[0];
    if (primary === undefined) return { queued: 0, sent: 0, dropped: 0, retried: 0, failedBatches: 0 };
    const { sent, retried, failedBatches } = primary.counts;
    return { queued: primary.undelivered, sent, dropped: primary.dropped, retried, failedBatches };
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}
