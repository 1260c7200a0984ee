import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { BUILT_IN_PATCHES, BUILT_IN_PATCH_NAMES } from '../patches/index.js';
import { MeteredCall } from '../patches/calls/call.js';
import type { PatchName } from '../patches/names.js';
import type { HookTarget, ProviderPatch } from '../patches/provider.js';
import { resolveConfig, type MeterOptions, type ResolvedConfig } from './config.js';
import { optionsFromEnvironment, unknownVariables, unknownVariableWarning } from './zero-code/environment.js';
import { createGenAiMetrics, type GenAiMetrics } from './telemetry/genai-metrics.js';
import { Delivery, type DeliveryStats } from './delivery/delivery.js';
import { sinkSecrets } from './delivery/sink-options.js';
import { ConfigError, describeValue, type LimitFrequency } from './errors.js';
import { CallRecorder } from './call-recorder.js';
import { buildEvent, RUN_OUTCOMES, type CallOutcome, type CallStart, type MeterEvent, type OutcomeEvent, type RunOutcome, type UsageEvent } from './event.js';
import { AgentLog, describeError } from './log.js';
import { reportedCost, validateManualEvent, type ManualUsage } from './manual-event.js';
import { Patcher } from './patching/patcher.js';
import { PriceBook, type PriceQuote } from './pricing/price-book.js';
import { toNano, toUsd } from './limits/store.js';
import { createLimitStore, SpendLimits, type BudgetSelector, type SetLimitInput, type TenantInspection, type TenantUsagePage, type WindowReport } from './limits/spend-limits.js';
import type { TenantPolicy } from './limits/controls/model-policy.js';
import type { RateLimit } from './limits/controls/rate-limits.js';
import { currentScope, scopeWithin, tenantStore, validateLabel, validateTenantId, type Labels, type TenantContext } from './tenants/tenant.js';
import { bindingOf, bindObjects, clientBinding, scopeOfCall, type CallAmount, type WrapOptions } from './tenants/wrapped-clients.js';
import { replaceOnInstance } from '../patches/calls/wrap-method.js';
import { RunTallies } from './runs.js';
import { tenantMiddleware, type TenantMiddleware, type TenantResolver } from './tenants/middleware.js';
import { validateFrequency, WindowCalendar } from './limits/windows.js';
import { ProviderIdentities } from './providers/identity.js';
import { waitUntil } from '../transport/deadline.js';
import { modelMiddleware, type ModelMiddleware, type ModelMiddlewareVersion } from './ai-sdk-middleware.js';

/** The quote of a call whose price the agent cannot know (see HookTarget.unpriced). */
const UNPRICED: PriceQuote = { costUsd: 0, source: 'unknown', unknown: true };

/** Labels copied onto every event of a scope: `feature`, `runId`, `agentId`, `metricCode`, free-form `tags`. */
export type ScopeOptions = Labels;

/** `meter.resolve`: a run's outcome, and the revenue it earned. */
export interface RunResolution {
  runId: string;
  /** Default: the tenant of the run's calls. */
  tenantId?: string;
  outcome: RunOutcome;
  /** Default 0 (an escalated or failed run usually earns nothing). */
  revenueUsd?: number;
}

/**
 * The agent: patches the provider SDKs, scopes calls to tenants, turns each call into a priced usage event, checks
 * spend limits before a request leaves, and hands events to delivery. The work itself lives in the parts it owns.
 */
/** The LLM_METER_* variables set what the options in code leave unset (or set to undefined). */
function withEnvironment(options: MeterOptions): MeterOptions {
  if (options === null || typeof options !== 'object') return options;
  const explicit = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const fromEnvironment = optionsFromEnvironment(process.env, new Set(Object.keys(explicit)));
  return fromEnvironment === undefined ? options : { ...fromEnvironment, ...explicit };
}

export class Meter {
  private readonly config: ResolvedConfig;
  private readonly log: AgentLog;
  private readonly prices: PriceBook;
  private readonly identities: ProviderIdentities;
  /** Providers whose usage counts input_tokens without cache reads and writes, for usage the app reports itself. */
  private readonly excludesCacheProviders: ReadonlySet<string>;
  private readonly limits: SpendLimits;
  private readonly delivery: Delivery;
  private readonly patcher: Patcher;
  /** The OpenTelemetry GenAI metrics of each call, when configured. */
  private readonly metrics: GenAiMetrics | undefined;
  private readonly recorder: CallRecorder;
  private readonly recordsAtOnce: boolean;
  private readonly runs = new RunTallies();
  private closed = false;
  private readonly rethrown = new WeakSet<object>();
  /** Faults inside the agent, swallowed (unless raiseOnError) and counted. */
  faults = 0;

  constructor(options: MeterOptions = {}) {
    this.config = resolveConfig(withEnvironment(options), BUILT_IN_PATCH_NAMES);
    const { limits } = this.config;
    this.log = new AgentLog(this.config.debug, [...sinkSecrets(this.config.sinks), limits?.kind === 'backend' ? limits.apiKey : undefined]);
    for (const name of unknownVariables(process.env)) this.log.warnOnce(`unknown-variable:${name}`, unknownVariableWarning(name));
    this.excludesCacheProviders = new Set(BUILT_IN_PATCHES.filter((p) => p.inputExcludesCache === true).map((p) => p.provider ?? p.name));
    this.identities = new ProviderIdentities(this.config.providerHosts);
    this.prices = new PriceBook(
      this.config.prices,
      (provider, model) => this.log.debug(`no price known for ${provider} model ${JSON.stringify(model)}: its events carry price_unknown`),
    );
    this.recordsAtOnce = this.config.raiseOnError || this.config.onEvent !== undefined;
    this.recorder = new CallRecorder((start, outcome, endedAt) => this.recordNow(start, outcome, endedAt));
    const recordPending = (): boolean => this.recorder.drain();
    this.limits = new SpendLimits(createLimitStore(this.config, this.log), new WindowCalendar(this.config.timezone), this.prices, this.config, recordPending, {
      ...this.config.alerts,
      onError: (err) => this.log.warnOnce(`threshold-alert:${err.message}`, `a threshold alert could not be sent: ${err.message}`),
    });
    this.delivery = new Delivery(this.config, this.log, (err) => this.reportFlushError(err), recordPending);
    this.patcher = new Patcher(this, this.config.patches, (err) => this.noteFault(err), this.log);
    this.metrics = this.config.openTelemetry === undefined ? undefined : createGenAiMetrics(this.config.openTelemetry);
  }

  // ---- patching --------------------------------------------------------------------------------------------------

  /** Patches every configured provider SDK: each build and copy loaded so far, and each one that loads later. */
  patchAll(): void {
    for (const name of this.config.patches) this.patch(name);
  }

  patch(name: PatchName): void {
    this.guard(() => this.patcher.patch(name), true);
  }

  unpatch(name: PatchName): void {
    this.patcher.unpatch(name);
  }

  unpatchAll(): void {
    this.patcher.unpatchAll();
  }

  /**
   * Patches exactly the SDK build and copy behind one client (bundled apps, unusual installs, apps that cannot use
   * --import). Returns the client.
   */
  instrument<T>(client: T): T {
    this.guard(() => this.patcher.instrument(client), true);
    return client;
  }

  /**
   * Bills every call through one client to `options.customerId`, with the options' labels and amounts, whether or not
   * the load hooks or patchAll() ran (its classes are patched as by instrument()). The customer wins over an enclosing
   * forTenant scope. Copies made with `client.withOptions()` stay wrapped. Returns the client.
   */
  wrap<T>(client: T, options: WrapOptions): T {
    const binding = clientBinding(options, this);
    this.guard(() => {
      bindObjects(this.patcher.instrument(client), binding);
      const withOptions = (client as { withOptions?: unknown }).withOptions;
      if (typeof withOptions === 'function') {
        const meter = this;
        replaceOnInstance(client as object, 'withOptions', function wrappedWithOptions(this: unknown, ...args: unknown[]) {
          const copy: unknown = Reflect.apply(withOptions, this, args);
          return copy !== null && typeof copy === 'object' ? meter.wrap(copy, options) : copy;
        });
      }
    }, true);
    return client;
  }

  /**
   * A middleware for the AI SDK's `wrapLanguageModel` that meters and limits the model it wraps, wherever its class
   * lives (a framework's bundle): `wrapLanguageModel({ model, middleware: meter.languageModelMiddleware('v3') })`.
   * `version`: the AI SDK's middleware version, 'v2' (ai 5), 'v3' (ai 6, the default) or 'v4' (ai 7).
   */
  languageModelMiddleware<V extends ModelMiddlewareVersion = 'v3'>(version: V = 'v3' as V): ModelMiddleware<V> {
    return modelMiddleware(this, version);
  }

  // ---- tenants ---------------------------------------------------------------------------------------------------

  /**
   * Runs `fn` with every LLM call inside it billed to `tenantId`; returns what `fn` returns. Innermost scope wins.
   * After shutdown() it still runs `fn`, unmetered: the app's code never breaks on a closed meter.
   */
  forTenant<R>(tenantId: string, fn: () => R, options: ScopeOptions = {}): R {
    if (typeof fn !== 'function') throw new ConfigError(`forTenant: fn must be a function, got ${describeValue(fn)}`);
    if (this.closed) return fn();
    return tenantStore.run(this.tenantContext(tenantId, options), fn);
  }

  /**
   * Runs `fn` as one run (an agent's task, a support ticket): its calls' events carry `run_id`, inside the current
   * tenant scope (or, outside any, billed to the wrapped client each call goes through). `meter.resolve` ends it.
   */
  forRun<R>(runId: string, fn: () => R): R {
    if (typeof fn !== 'function') throw new ConfigError(`forRun: fn must be a function, got ${describeValue(fn)}`);
    if (runId === undefined) throw new ConfigError('forRun: runId must be a non-empty string, got undefined');
    const scope = scopeWithin(currentScope(), undefined, { runId }, 'forRun');
    if (this.closed) return fn();
    return tenantStore.run(scope, fn);
  }

  /**
   * Bills every call for the rest of the current async context to `tenantId` (AsyncLocalStorage.enterWith). Safe only
   * where that context is one unit of work's own: a script, a job inside forTenant. Not in an HTTP request handler: on
   * Node 20 and 22 the handler runs in its connection's context, which every request of a keep-alive connection shares,
   * so the connection's next requests would bill to this tenant too. For requests use `middleware`.
   */
  setTenant(tenantId: string, options: ScopeOptions = {}): void {
    tenantStore.enterWith(this.tenantContext(tenantId, options));
  }

  /**
   * Express / Connect middleware, also a Fastify hook (onRequest, preValidation or preHandler), that bills each request
   * to the tenant `resolveTenant` names: the rest of the chain runs in forTenant. A request it names none for (undefined
   * or null) goes on untouched; a throw or rejection of `resolveTenant`, and an invalid tenant id, go to next(err).
   */
  middleware<Req = IncomingMessage>(resolveTenant: TenantResolver<Req>, options: ScopeOptions = {}): TenantMiddleware<Req> {
    scopeWithin(undefined, undefined, options ?? {}, 'options');
    return tenantMiddleware(resolveTenant, (tenantId, next) => this.forTenant(tenantId, next, options));
  }

  private tenantContext(tenantId: string, options: ScopeOptions): TenantContext {
    const id = validateTenantId(tenantId);
    if (options === undefined || options === null) return { tenantId: id };
    if (typeof options !== 'object') throw new ConfigError(`scope options must be an object, got ${describeValue(options)}`);
    // The common scope, on every request: a tenant and no labels.
    const { tags, feature, runId, agentId, metricCode } = options;
    if (tags === undefined && feature === undefined && runId === undefined && agentId === undefined && metricCode === undefined) return { tenantId: id };
    return scopeWithin(undefined, id, options, 'options') as TenantContext;
  }

  // ---- spend limits ----------------------------------------------------------------------------------------------

  /** Sets a tenant's limit for a calendar window (a tenant may have a daily and a monthly one); applies to the next call. */
  setLimit(tenantId: string, limit: SetLimitInput): Promise<void> {
    return this.whileRunning('setLimit', 'limits', () => this.limits.setLimit(tenantId, limit));
  }

  /**
   * The models a tenant may call (exact ids, or prefixes ending in `*`): any other is refused before it is sent, with a
   * ModelNotAllowedError. `{}` (no `models`) lifts the restriction. On Redis it applies fleet-wide.
   */
  setPolicy(tenantId: string, policy: TenantPolicy): Promise<void> {
    return this.whileRunning('setPolicy', 'policies', () => this.limits.setPolicy(tenantId, policy));
  }

  /** A setting of the limit store, refused once shut down (the store is closed). */
  private whileRunning(method: string, what: string, set: () => Promise<void>): Promise<void> {
    if (this.closed) return Promise.reject(new ConfigError(`${method}: this meter was shut down; set ${what} through a Meter that is running`));
    return set();
  }

  getPolicy(tenantId: string): Promise<TenantPolicy> {
    return this.limits.policy(tenantId);
  }

  /**
   * Requests and tokens per minute and calls in flight at once for a tenant: a call past one is refused before it is
   * sent, with a RateLimitedError carrying `retryAfterMs`. `{}` lifts them. On Redis they hold fleet-wide.
   */
  setRateLimit(tenantId: string, limit: RateLimit): Promise<void> {
    return this.whileRunning('setRateLimit', 'rate limits', () => this.limits.setRateLimit(tenantId, limit));
  }

  getRateLimit(tenantId: string): Promise<RateLimit> {
    return this.limits.rateLimit(tenantId);
  }

  /** Everything that applies to a tenant: its windows (spend, limits, thresholds), its policy and its rate limits. */
  async inspect(tenantId: string): Promise<TenantInspection> {
    this.recorder.drain();
    const [windows, policy, rateLimit, rateUsage] = await Promise.all([
      this.limits.usage(tenantId),
      this.limits.policy(tenantId),
      this.limits.rateLimit(tenantId),
      this.limits.rateUsage(tenantId),
    ]);
    return { tenantId, windows, policy, rateLimit, rateUsage };
  }

  /**
   * The tenants with spend or revenue in the current day (or month), about `limit` (default 100, at most 1000) a page:
   * pass the answer's `cursor` to get the next page. Bounded in memory whatever the number of tenants.
   */
  async listTenants(options: { frequency?: LimitFrequency; limit?: number; cursor?: string } = {}): Promise<TenantUsagePage> {
    const { frequency = 'per_day', limit = 100, cursor } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new ConfigError(`listTenants: limit must be an integer from 1 to 1000, got ${describeValue(limit)}`);
    if (cursor !== undefined && typeof cursor !== 'string') throw new ConfigError(`listTenants: cursor must be the string a page answered, got ${describeValue(cursor)}`);
    return this.limits.tenants(validateFrequency(frequency), limit, cursor);
  }

  /** Removes a tenant's limit of a frequency: of its whole spend, or with `{ feature }` / `{ model }` that budget's. */
  removeLimit(tenantId: string, frequency: LimitFrequency, budget?: BudgetSelector): Promise<void> {
    return this.limits.removeLimit(tenantId, frequency, budget);
  }

  /** Per window (limited ones first): spent, reserved, revenue and margin so far, the limit where one is set, and when the window resets. */
  getUsage(tenantId: string): Promise<WindowReport[]> {
    this.recorder.drain();
    return this.limits.usage(tenantId);
  }

  // ---- events ----------------------------------------------------------------------------------------------------

  /** Records usage the agent cannot see (another SDK, a batch job, a self-hosted model). Refused after shutdown(). */
  trackManually(usage: ManualUsage): UsageEvent {
    if (this.closed) throw new ConfigError('trackManually: this meter was shut down; usage recorded now would never be delivered');
    const event = validateManualEvent(usage, currentScope());
    this.recorder.drain();
    const quote = this.prices.quote(event, this.excludesCacheProviders.has(event.provider));
    const cost = this.stampCost(event, quote, undefined, reportedCost(usage), undefined);
    if (event.tenant_id !== undefined) this.limits.book(event.tenant_id, { spentUsd: cost, revenueUsd: 0, call: { model: event.model, feature: event.feature } });
    this.recordMetrics(event, event.model, this.excludesCacheProviders.has(event.provider));
    this.runs.add(event);
    this.emit(event, this.config.onEvent);
    return event;
  }

  /** @internal A patched method's call starts (the CallSink the wrappers call). */
  begin(provider: ProviderPatch, target: HookTarget, args: readonly unknown[], resource: unknown): MeteredCall {
    const request = target.readRequest(args, resource);
    const sdkProvider = provider.providerOf?.(resource) ?? provider.provider;
    const identity = this.identities.of(sdkProvider, provider.baseUrl?.(resource), provider.clientProvider?.(resource));
    const binding = bindingOf(resource);
    // A client another Meter wrapped, of a class this one patched first: the call is the other Meter's (its limits,
    // its ledger, its sinks).
    if (binding !== undefined && binding.sink !== this) return binding.sink.begin(provider, target, args, resource);
    const ambient = currentScope();
    const scope = binding === undefined ? ambient : scopeOfCall(binding, ambient);
    const start: CallStart = {
      provider: identity.provider,
      identity,
      inputExcludesCache: provider.inputExcludesCache === true,
      endpoint: target.endpointOf?.(args, resource) ?? target.endpoint,
      requestedModel: request.model,
      stream: request.stream,
      tenant: scope?.tenantId === undefined ? undefined : (scope as TenantContext),
      scope,
      binding,
      startedAt: performance.now(),
      startedAtWall: Date.now(),
      target,
      classifyInput: provider.classifyInput,
      args,
    };
    if (target.paidEarlier === true) start.paidEarlier = true;
    if (start.tenant === undefined && this.log.debugEnabled) {
      this.log.debugOnce(`no-tenant:${provider.name}:${target.endpoint}`, `${provider.name} ${target.endpoint} called outside any tenant scope: its events carry no tenant_id`);
    }
    const admission = this.limits.admit(start);
    if (!(admission instanceof Promise)) {
      start.reservation = admission.reservation;
      return new MeteredCall(this, start, admission.refusal, undefined, admission.sendOutputCap);
    }
    const admitted = admission.then(({ reservation, refusal, sendOutputCap }) => {
      if (refusal !== undefined) throw refusal;
      // The call already ended (aborted, or the SDK threw before sending): its reservation settles at what it cost.
      if (start.closedAtUsd !== undefined) {
        if (reservation !== undefined) this.limits.settle(reservation, start.closedAtUsd);
        return undefined;
      }
      start.reservation = reservation;
      return sendOutputCap;
    });
    admitted.catch(() => undefined);
    return new MeteredCall(this, start, undefined, admitted);
  }

  /** @internal */
  release(start: CallStart): void {
    start.closedAtUsd = 0;
    if (start.reservation !== undefined) this.limits.settle(start.reservation, 0);
    start.reservation = undefined;
    start.args = [];
  }

  /**
   * @internal
   * A call ended: its event is built, priced, settled and delivered with the next batch, off the call's path. With an
   * `onEvent` hook at once, so that the app sees the event before the call returns; under raiseOnError at once too, so
   * that a fault in recording reaches the caller where it happened.
   */
  record(start: CallStart, outcome: CallOutcome): void {
    if (this.recordsAtOnce) this.recordNow(start, outcome, performance.now());
    else this.recorder.add(start, outcome, performance.now());
  }

  private recordNow(start: CallStart, outcome: CallOutcome, endedAt: number): void {
    try {
      const event = buildEvent(start, outcome, endedAt);
      this.price(event, start, outcome);
      this.recordMetrics(event, start.requestedModel, start.inputExcludesCache);
      this.runs.add(event);
      this.emit(event, this.config.onEvent);
    } catch (err) {
      this.fault(err);
    }
  }

  /**
   * Stamps the cost, and settles the call's reservation at it. A call whose usage cannot be trusted — a stream cut
   * short before its final usage (early break, abort, an error mid-stream), or counts that arrived invalid — is costed
   * at its reservation when that is higher: over-counting is the safe side of a budget.
   */
  private price(event: UsageEvent, start: CallStart, outcome: CallOutcome): void {
    const quote = start.target.unpriced === true ? UNPRICED : this.prices.quote(event, start.inputExcludesCache);
    const reported = outcome.reportedCostUsd;
    let estimate: number | undefined;
    // A stream cut short by an error or an abort was still sent, and the provider bills what it generated.
    if (reported === undefined && (event.usage_invalid === true || event.partial === true)) {
      const reserved = this.limits.reservedUsd(start);
      if (reserved !== undefined && reserved > quote.costUsd) estimate = reserved;
    }
    const binding = start.binding;
    const provided = binding?.providerCostUsd === undefined ? undefined : this.amount(binding.providerCostUsd, outcome, event, 'providerCostUsd');
    const cost = this.stampCost(event, quote, estimate, reported, provided);
    // Revenue after the cost, so that a function of the event can mark the cost up.
    const revenue = binding?.revenueUsd === undefined ? undefined : this.amount(binding.revenueUsd, outcome, event, 'revenueUsd');
    if (revenue !== undefined) event.revenue_usd = toUsd(toNano(revenue));
    outcome.response = undefined;
    const tenantId = start.tenant?.tenantId;
    const reservation = start.reservation;
    if (start.paidEarlier !== true) {
      start.closedAtUsd = cost;
      if (reservation !== undefined) this.limits.settle(reservation, cost, event.total_tokens);
      start.reservation = undefined;
      start.args = [];
    }
    if (tenantId !== undefined) {
      const call = { model: start.requestedModel ?? event.model, feature: event.feature };
      this.limits.book(tenantId, { spentUsd: cost, revenueUsd: event.revenue_usd ?? 0, settledIn: start.paidEarlier === true ? undefined : reservation, call });
    }
  }

  /**
   * A wrapped client's amount for one call. A function that throws or answers something other than a finite USD amount
   * >= 0 costs the app nothing: a counted fault, and no amount.
   */
  private amount(amount: CallAmount, outcome: CallOutcome, event: UsageEvent, field: string): number | undefined {
    if (typeof amount === 'number') return amount;
    let value: unknown;
    try {
      value = amount(outcome.response, event);
    } catch (err) {
      this.amountFault(field, `threw (${describeError(err)})`);
      return undefined;
    }
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
    // Only the kind of what came back: a string could hold the response's text.
    const what = typeof value === 'number' ? String(value) : `a ${value === null ? 'null' : typeof value}`;
    this.amountFault(field, `returned ${what}, not a finite USD amount >= 0`);
    return undefined;
  }

  private amountFault(field: string, what: string): void {
    this.faults++;
    this.log.warnOnce(`amount:${field}`, `wrap: the ${field} function ${what}; the call is recorded without it (the app's call was not affected)`);
  }

  /**
   * Costs are whole nano-dollars, the resolution every ledger counts in: a billing system gets at most 15 significant
   * digits (never 0.0013700000000000001), and the events of a tenant sum to its ledger exactly.
   */
  private stampCost(event: UsageEvent, quote: PriceQuote, estimate: number | undefined, reportedUsd: number | undefined, providedUsd: number | undefined): number {
    if (providedUsd !== undefined) {
      event.cost_usd = toUsd(toNano(providedUsd));
      event.price_source = 'provided';
      if (quote.unknown !== true) event.estimated_cost_usd = toUsd(toNano(quote.costUsd));
      return event.cost_usd;
    }
    if (reportedUsd !== undefined) {
      event.cost_usd = toUsd(toNano(reportedUsd));
      event.price_source = 'reported';
      if (quote.unknown !== true) event.estimated_cost_usd = toUsd(toNano(quote.costUsd));
      if (quote.tier !== undefined) event.price_tier = quote.tier;
      return event.cost_usd;
    }
    event.cost_usd = toUsd(toNano(estimate ?? quote.costUsd));
    event.price_source = quote.source;
    if (estimate !== undefined) event.cost_estimated = true;
    if (quote.unknown === true) event.price_unknown = true;
    if (quote.inconsistent === true) event.price_inconsistent = true;
    if (quote.tier !== undefined) event.price_tier = quote.tier;
    return event.cost_usd;
  }

  /**
   * Ends a run: one outcome event (`type: 'outcome'`, its id derived from the run id, so resolving again is the same
   * event to a deduplicating backend) with the outcome, the revenue, and the cost and count of the run's calls this
   * process recorded, delivered like usage events and handed to onOutcome. The revenue goes into the tenant's ledger
   * once per run in this process. Returns the event.
   */
  resolve(resolution: RunResolution): OutcomeEvent {
    if (this.closed) throw new ConfigError('resolve: this meter was shut down; an outcome recorded now would never be delivered');
    if (resolution === null || typeof resolution !== 'object') throw new ConfigError(`resolve: expected { runId, outcome, revenueUsd }, got ${describeValue(resolution)}`);
    const runId = validateLabel(resolution.runId, 'resolve: runId');
    if (runId === undefined) throw new ConfigError('resolve: runId must be a non-empty string, got undefined');
    const tenantId = resolution.tenantId === undefined ? undefined : validateTenantId(resolution.tenantId, 'resolve: tenantId');
    if (!RUN_OUTCOMES.includes(resolution.outcome)) {
      throw new ConfigError(`resolve: outcome must be one of ${RUN_OUTCOMES.join(', ')}, got ${describeValue(resolution.outcome)}`);
    }
    const revenueUsd = resolution.revenueUsd ?? 0;
    if (typeof revenueUsd !== 'number' || !Number.isFinite(revenueUsd) || revenueUsd < 0) {
      throw new ConfigError(`resolve: revenueUsd must be a finite number >= 0, got ${describeValue(revenueUsd)}`);
    }
    // The run's calls that ended are counted before it is closed.
    this.recorder.drain();
    const { event, first } = this.runs.resolve(runId, tenantId, resolution.outcome, revenueUsd);
    // Once per run in this process, and in a fleet-wide ledger once whichever process resolves it.
    if (first && event.tenant_id !== undefined) this.limits.book(event.tenant_id, { spentUsd: 0, revenueUsd: event.revenue_usd, onceId: event.event_id });
    this.emit(event, this.config.onOutcome);
    return event;
  }

  /**
   * Every event is handed to delivery first (which counts one recorded after shutdown as dropped), then to the app's
   * hook for its kind (onEvent, onOutcome).
   */
  private emit<E extends MeterEvent>(event: E, hook: ((event: E) => void) | undefined): void {
    if (this.log.debugEnabled) this.log.debug(`event ${JSON.stringify(event)}`);
    this.delivery.add(event);
    if (hook === undefined) return;
    try {
      hook(event);
    } catch (err) {
      this.fault(err);
    }
  }

  // ---- faults ----------------------------------------------------------------------------------------------------

  /** The app's MeterProvider is the app's code: what it throws is a fault of the agent's, never the call's. */
  private recordMetrics(event: UsageEvent, requestModel: string | undefined, inputExcludesCache: boolean): void {
    if (this.metrics === undefined) return;
    try {
      this.metrics.record(event, requestModel, inputExcludesCache);
    } catch (err) {
      this.noteFault(err);
    }
  }

  /** @internal */
  fault(err: unknown): void {
    // Under raiseOnError a fault travels up through the agent's own layers: count and log it once.
    if (!(err !== null && typeof err === 'object' && this.rethrown.has(err))) this.noteFault(err);
    if (!this.config.raiseOnError) return;
    if (err !== null && typeof err === 'object') this.rethrown.add(err);
    throw err;
  }

  /** Counts and logs a fault without ever throwing: for background work that has no caller to throw to. */
  private noteFault(err: unknown): void {
    this.faults++;
    this.log.warnOnce(`fault:${describeError(err)}`, `internal fault (${describeError(err)}); the app's call was not affected`);
  }

  /** Runs an agent step; bad input (ConfigError) still reaches the caller, any other fault is the agent's own. */
  private guard(step: () => void, rethrowConfigErrors: boolean): void {
    try {
      step();
    } catch (err) {
      if (rethrowConfigErrors && err instanceof ConfigError) throw err;
      this.fault(err);
    }
  }

  private reportFlushError(err: Error): void {
    const safe = new Error(this.log.redact(err.message));
    safe.name = err.name;
    if (this.config.onFlushError === undefined) {
      this.log.warnOnce(`flush:${safe.message}`, `could not deliver usage events: ${safe.message}`);
      return;
    }
    try {
      this.config.onFlushError(safe);
    } catch (hookErr) {
      this.noteFault(hookErr);
    }
  }

  // ---- delivery --------------------------------------------------------------------------------------------------

  /** Sends every queued event now (each batch once; a failed batch stays queued for a retry). */
  async flush(): Promise<void> {
    await this.delivery.flush();
  }

  /**
   * Unpatches, delivers what is queued (retrying) and closes the limit store, together within `shutdownTimeout`
   * whatever a peer does, and stops the timers. Events recorded after this (a call still in flight) reach onEvent and
   * count as dropped; trackManually and setLimit are refused, forTenant runs its fn unmetered.
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const deadline = Date.now() + this.config.shutdownTimeout;
    this.unpatchAll();
    // Calls that ended are settled while the limit store is still open.
    this.recorder.drain();
    // The store gets the same deadline; a request of its own still in flight then ends by its own deadline.
    const limitsClosed = this.limits.close().catch((err: unknown) => this.noteFault(err));
    await Promise.all([this.delivery.close(deadline), waitUntil(limitsClosed, deadline)]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * Delivery so far, of the first sink (the ingest of `url`, else the usage file, else the first of `sinks`): events not
   * delivered yet (queued or in a batch being sent), sent, dropped (queue overflow, refused for good, or recorded after
   * shutdown), retried requests, and batches given up on; queued + sent + dropped is every event that sink takes.
   * `sinks` has the same for each sink by name, with drops by reason, and `outbox` what the outbox wrote and lost.
   */
  stats(): DeliveryStats {
    return this.delivery.stats();
  }
}
