import { ConfigError, describeValue } from '../errors.js';
import { validateTenantId } from './tenant.js';

/** A request's tenant id; undefined or null for a request that bills to no tenant. */
export type RequestTenant = string | null | undefined;

export type TenantResolver<Req> = (req: Req) => RequestTenant | Promise<RequestTenant>;

/**
 * Connect / Express middleware, and equally a Fastify onRequest, preValidation or preHandler hook: all three have the
 * (request, response, next) shape, and pass an error on with next(err).
 */
export type TenantMiddleware<Req> = (req: Req, res: unknown, next: (err?: Error) => void) => void;

/** Runs `next` with every call inside it billed to the tenant (the Meter's forTenant). */
type RunForTenant = (tenantId: string, next: () => void) => void;

/**
 * Bills each request to the tenant `resolveTenant` names: the rest of the chain runs inside `runForTenant`, a scope
 * that ends when `next` returns (what the request started keeps it), so none of it reaches the next request on the same
 * connection. A request without a tenant goes on untouched; a resolver that throws or rejects, and an invalid tenant
 * id, go to next(err).
 */
export function tenantMiddleware<Req>(resolveTenant: TenantResolver<Req>, runForTenant: RunForTenant): TenantMiddleware<Req> {
  if (typeof resolveTenant !== 'function') throw new ConfigError(`middleware: resolveTenant must be a function, got ${describeValue(resolveTenant)}`);
  return (req, _res, next) => {
    const enter = (tenantId: RequestTenant): void => {
      if (tenantId === undefined || tenantId === null) return next();
      try {
        validateTenantId(tenantId);
      } catch (err) {
        return next(err as Error);
      }
      runForTenant(tenantId, next);
    };
    let resolved: RequestTenant | Promise<RequestTenant>;
    try {
      resolved = resolveTenant(req);
    } catch (err) {
      return next(err as Error);
    }
    if (!(resolved instanceof Promise)) return enter(resolved);
    // The chain goes on outside the promise: a throw from the app's next middleware is then what it is from any
    // callback, never an unhandled rejection.
    resolved.then(
      (tenantId) => process.nextTick(enter, tenantId),
      (err: unknown) => process.nextTick(next, err as Error),
    );
  };
}
