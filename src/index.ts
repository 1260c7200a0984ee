export { Meter, type RunResolution, type ScopeOptions } from './meter.js';
export { getMeter } from './zero-code/default-meter.js';
export { wrapAnthropic, wrapGoogle, wrapOpenAI } from './wrap.js';
export type { CallAmount, WrapOptions } from './tenants/wrapped-clients.js';
export type { RequestTenant, TenantMiddleware, TenantResolver } from './tenants/middleware.js';
export type { MeterOptions } from './config.js';
export type { PatchName } from '../patches/names.js';
export type { PriceKey, ProviderId } from './providers/provider-id.js';
export type { OpenTelemetryOptions, OtelMeterProvider } from './telemetry/genai-metrics.js';
export { ConfigError, LimitExceededError, ModelNotAllowedError, RateLimitedError, type LimitFrequency } from './errors.js';
export type { RateLimit, RateUsage } from './limits/controls/rate-limits.js';
export type { TenantPolicy } from './limits/controls/model-policy.js';
export { LimitStoreFaultError, LimitStoreUnavailableError } from './limits/store.js';
export type { BackendLimitsOptions, DefaultLimit, LimitsOptions, OutboxOptions } from './config.js';
export type { ThresholdAlert } from './limits/controls/budget-alerts.js';
export type { BudgetSelector, SetLimitInput, TenantInspection, TenantUsagePage, WindowReport } from './limits/spend-limits.js';
export type {
  FileSinkOptions,
  HttpSinkOptions,
  LagoSinkOptions,
  OpenMeterSinkOptions,
  SinkOptions,
  SinkQueueOptions,
  StripeSinkOptions,
} from './delivery/sink-options.js';
export type { DeliveryStats, SinkStats } from './delivery/delivery.js';
export type { OutboxCounts } from '../transport/outbox/outbox.js';
export type { StripeDimension, StripeMeter, StripeMeterValue } from '../transport/billing/stripe-meters.js';
export type { AccountLookup } from '../transport/billing/account-lookup.js';
export { RequireTenantError } from './limits/spend-limits.js';
export { TenantIdError } from './tenants/tenant.js';
export type { EventLabels, MeterEvent, OutcomeEvent, RunOutcome, UsageEvent, UsageCounts } from './event.js';
export type { ManualUsage } from './manual-event.js';
export type { UsageReport, UsageReportGroup, UsageReportTotals } from './report/formats/json.js';
export type { ModelMiddleware, ModelMiddlewareVersion } from './ai-sdk-middleware.js';
