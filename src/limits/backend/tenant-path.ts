import { ConfigError } from '../../errors.js';

/**
 * The request path of a tenant's resource under the backend's base url: `<base path>/limits/<tenant><suffix>`.
 *
 * Built as a string and sent as is, because a WHATWG URL resolves `.` and `..` segments, percent-encoded ones
 * included. The tenant segment is encodeURIComponent with every '.' encoded too: it holds only [A-Za-z0-9-_!~*'()]
 * and %XX triplets, so it is never a dot segment and never carries a '/', '?', '#' or bare '%'; and
 * decodeURIComponent gives the id back, so two ids never share a path.
 */
export function tenantPath(base: URL, tenantId: string, suffix = ''): string {
  return `${base.pathname.replace(/\/+$/, '')}/limits/${encodeTenantId(tenantId)}${suffix}`;
}

function encodeTenantId(tenantId: string): string {
  try {
    return encodeURIComponent(tenantId).replace(/\./g, '%2E');
  } catch {
    // A lone surrogate has no UTF-8 form, hence no encoding that could be decoded back to it.
    throw new ConfigError('tenantId must be well-formed Unicode to reach the limits backend (it holds a lone surrogate)');
  }
}
