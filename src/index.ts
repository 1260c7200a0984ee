export { Meter, type ScopeOptions } from './meter.js';
export type { RequestTenant, TenantMiddleware, TenantResolver } from './tenants/middleware.js';
export type { MeterOptions } from './config.js';
export { ConfigError, LimitExceededError, type LimitFrequency } from './errors.js';
export { LimitStoreFaultError, LimitStoreUnavailableError } from './limits/store.js';
export type { BackendLimitsOptions, LimitsOptions } from './config.js';
export { RequireTenantError } from './limits/spend-limits.js';
export type { UsageEvent, UsageCounts } from './event.js';
export type { ManualUsage } from './manual-event.js';
