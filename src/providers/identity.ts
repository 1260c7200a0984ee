import { findProvider } from '@pydantic/genai-prices';
import { ConfigError, describeValue } from '../errors.js';
import type { ProviderId } from './provider-id.js';

/** Who served a call, as its event names it. */
export interface ProviderIdentity {
  /** The price data's provider id (`openai`, `deepseek`, `openrouter`, `azure`, `aws`, ...). */
  provider: ProviderId;
  /** Host (and port) of the base URL the request went to; absent when the SDK does not say. */
  host: string | undefined;
  /**
   * The price data does not know the host (a company gateway, a LiteLLM proxy, a local server, whether or not the user
   * mapped it): its responses may carry a cost header of a gateway's own.
   */
  unknownHost: boolean;
}

/** A user's mapping of where requests go to a provider: a host (`llm.internal.example.com`, `10.0.0.5:8000`) or a base-URL prefix. */
interface HostRule {
  host?: string;
  prefix?: string;
  provider: ProviderId;
}

/** Distinct (SDK, base URL) pairs remembered: apps use a handful; past this the cache starts over. */
const MAX_REMEMBERED = 1000;

export function validateProviderHosts(value: unknown): HostRule[] {
  if (value === undefined) return [];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`providerHosts must be an object mapping a host or base-URL prefix to a provider id, got ${describeValue(value)}`);
  }
  const rules: HostRule[] = [];
  for (const [key, id] of Object.entries(value)) {
    if (typeof id !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(id)) {
      throw new ConfigError(`providerHosts[${JSON.stringify(key)}] must be a provider id such as 'deepseek' (lower case), got ${describeValue(id)}`);
    }
    // An id the price data does not know is taken (the type asks for a cast): a provider priced through `prices`.
    const provider = id as ProviderId;
    if (/^https?:\/\//i.test(key)) {
      let url: URL;
      try {
        url = new URL(key);
      } catch {
        throw new ConfigError(`providerHosts: ${JSON.stringify(key)} is not a valid base URL`);
      }
      rules.push({ prefix: withoutTrailingSlash(url.href), provider });
    } else if (/^[a-z0-9.-]+(:\d+)?$/i.test(key) && key.length > 0) {
      rules.push({ host: key.toLowerCase(), provider });
    } else {
      throw new ConfigError(`providerHosts: ${JSON.stringify(key)} must be a host ('llm.internal.example.com', 'localhost:8000') or a base URL ('https://gateway.example.com/deepseek')`);
    }
  }
  // The longest prefix is the most specific.
  rules.sort((a, b) => (b.prefix?.length ?? 0) - (a.prefix?.length ?? 0));
  return rules;
}

function withoutTrailingSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

function startsWithSegment(url: string, prefix: string): boolean {
  return url.startsWith(prefix) && (url.length === prefix.length || url[prefix.length] === '/' || url[prefix.length] === '?');
}

/** The provider the price data knows at this URL (its hosts, from each provider's API pattern), if any. */
function knownProviderAt(url: URL): ProviderId | undefined {
  try {
    return findProvider({ providerApiUrl: `${url.protocol}//${url.host}${url.pathname}` })?.id as ProviderId | undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decides the provider of a call from where its request goes: the user's `providerHosts` first, then a client class
 * that names one (AzureOpenAI), then the hosts the price data knows; any other host keeps the SDK's own provider.
 * Resolved once per (SDK, base URL).
 */
export class ProviderIdentities {
  private readonly remembered = new Map<string, Map<string, ProviderIdentity>>();
  private readonly withoutUrl = new Map<string, ProviderIdentity>();

  constructor(private readonly rules: readonly HostRule[]) {}

  of(sdkProvider: ProviderId, baseUrl: string | undefined, classProvider: ProviderId | undefined): ProviderIdentity {
    const scope = classProvider ?? sdkProvider;
    if (baseUrl === undefined) {
      let identity = this.withoutUrl.get(scope);
      if (identity === undefined) this.withoutUrl.set(scope, (identity = { provider: scope, host: undefined, unknownHost: false }));
      return identity;
    }
    let byUrl = this.remembered.get(scope);
    if (byUrl === undefined) this.remembered.set(scope, (byUrl = new Map()));
    const known = byUrl.get(baseUrl);
    if (known !== undefined) return known;
    const identity = this.resolve(sdkProvider, baseUrl, classProvider);
    if (byUrl.size >= MAX_REMEMBERED) byUrl.clear();
    byUrl.set(baseUrl, identity);
    return identity;
  }

  private resolve(sdkProvider: ProviderId, baseUrl: string, classProvider: ProviderId | undefined): ProviderIdentity {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      return { provider: classProvider ?? sdkProvider, host: undefined, unknownHost: true };
    }
    const host = url.host;
    const href = withoutTrailingSlash(url.href);
    const rule = this.rules.find((r) => (r.prefix !== undefined ? startsWithSegment(href, r.prefix) : r.host === host || r.host === url.hostname));
    if (rule !== undefined) return { provider: rule.provider, host, unknownHost: knownProviderAt(url) === undefined };
    if (classProvider !== undefined) return { provider: classProvider, host, unknownHost: false };
    const known = knownProviderAt(url);
    return known === undefined ? { provider: sdkProvider, host, unknownHost: true } : { provider: known, host, unknownHost: false };
  }
}
