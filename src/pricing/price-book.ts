import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { calcPrice, type ConditionalPrice, type ModelInfo, type ModelPrice, type Provider, type TieredPrices, type Usage } from '@pydantic/genai-prices';
import { ConfigError, describeValue } from '../errors.js';
import type { UsageEvent } from '../event.js';
import { tierPrice, tierRates } from './tiers.js';
import { utcDay } from '../timestamps.js';
import { SUPPLEMENTARY_SOURCE, supplementaryPrice, type SupplementaryPrice } from './supplementary.js';

/** A user's own price for a model, in USD per million tokens. */
export interface PriceOverride {
  input_mtok: number;
  output_mtok: number;
  cache_read_mtok?: number;
  cache_write_mtok?: number;
}

export interface PriceQuote {
  costUsd: number;
  source: string;
  unknown?: true;
  /** The usage did not add up (e.g. more cached tokens than input tokens): priced as well as it could be, and flagged. */
  inconsistent?: true;
  /** The service-tier or residency multipliers applied to the standard price (see tiers.ts). */
  tier?: string;
}

/**
 * Rates for sizing a reservation, each the highest that can apply to a request of that much input (its tier; the
 * dearest input pool the request can reach), so that an estimate never falls short.
 */
export interface ReservationRates {
  inputPerToken: number;
  outputPerToken: number;
  /** A fixed price per request, where the model has one. */
  perRequest: number;
}

/** Which input pools a request can reach: audio rates only with audio (or video) in it, cache writes only when asked. */
export interface InputPools {
  audio: boolean;
  cacheWrites: boolean;
}

function isInputRate(key: string, pools: InputPools): boolean {
  if (key.startsWith('cache_write')) return pools.cacheWrites;
  if (!key.startsWith('input_')) return false;
  return pools.audio || !key.includes('audio');
}

const OVERRIDE_KEYS = ['input_mtok', 'output_mtok', 'cache_read_mtok', 'cache_write_mtok'] as const;

export function validatePriceOverrides(value: unknown): Record<string, PriceOverride> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`prices must be an object keyed 'provider:model', got ${describeValue(value)}`);
  }
  for (const [key, price] of Object.entries(value)) {
    if (!/^[^:]+:.+$/.test(key)) throw new ConfigError(`prices: key ${JSON.stringify(key)} must be 'provider:model'`);
    const p = price as Record<string, unknown>;
    if (p === null || typeof p !== 'object') throw new ConfigError(`prices[${JSON.stringify(key)}] must be an object, got ${describeValue(price)}`);
    for (const field of Object.keys(p)) {
      if (!(OVERRIDE_KEYS as readonly string[]).includes(field)) throw new ConfigError(`prices[${JSON.stringify(key)}]: unknown field ${JSON.stringify(field)}`);
    }
    for (const field of OVERRIDE_KEYS) {
      const rate = p[field];
      const required = field === 'input_mtok' || field === 'output_mtok';
      if (rate === undefined && !required) continue;
      if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0) {
        throw new ConfigError(`prices[${JSON.stringify(key)}].${field} must be a finite, non-negative number, got ${describeValue(rate)}`);
      }
    }
  }
  return { ...(value as Record<string, PriceOverride>) };
}

const require_ = createRequire(__filename);
const LIBRARY_SOURCE = (() => {
  const entry = require_.resolve('@pydantic/genai-prices');
  const manifest = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { name: string; version: string };
  return `${manifest.name}@${manifest.version}`;
})();

/** The price keys the fast path prices itself; a model with any other key (audio, images, ...) goes to the library. */
const FAST_KEYS = new Set(['input_mtok', 'output_mtok', 'cache_read_mtok', 'cache_write_mtok', 'cache_write_1h_mtok', 'web_searches_kcount', 'storage_searches_kcount']);

/** A model's rates at one time. */
interface ModelRates {
  /** Null when the price varies with the time of day: then the library prices each call. */
  price: ModelPrice | null;
  /** A one-model provider for the library's calcPrice: skips the search over every provider and model. */
  libraryProvider: Provider | undefined;
  /**
   * When the fast path prices a call: the usage keys that, all absent, leave only rates it knows (a call without audio
   * on a model with audio rates); empty, always; null, never (rates only the library knows how to apply).
   */
  fastUnless: readonly (keyof Usage)[] | null;
}

/** Rates in force from a date (`YYYY-MM-DD`, UTC midnight; '' for the rates before any dated change). */
interface DatedRates extends ModelRates {
  from: string;
}

interface ResolvedModel extends ModelRates {
  source: string;
  contextWindow: number | undefined;
  /** For a model priced per image (supplementary.ts): the price of one image of the event's request. */
  perImage?: SupplementaryPrice['perImage'];
  /** For a model whose price changes on given dates: each period's rates, in the price data's order. */
  schedule?: DatedRates[];
}

/**
 * The rates in force at `timestamp` (an ISO 8601 string: it compares with a date as the instants do), chosen as the
 * library chooses them: the last period that has begun, else the first.
 */
function ratesAt(model: ResolvedModel, timestamp: string): ModelRates {
  const schedule = model.schedule;
  if (schedule === undefined) return model;
  for (let i = schedule.length - 1; i >= 0; i--) {
    const period = schedule[i]!;
    if (period.from === '' || timestamp >= period.from) return period;
  }
  return schedule[0]!;
}

/**
 * A price that changes on dates, resolved into one priced period per date so that each call is priced without a search
 * of the schedule by the library; undefined when a period depends on the time of day.
 */
function datedSchedule(info: ModelInfo, provider: Provider, periods: readonly ConditionalPrice[]): DatedRates[] | undefined {
  if (periods.some((p) => p.constraint !== undefined && p.constraint.type !== 'start_date')) return undefined;
  return periods.map((period) => ({ from: period.constraint?.type === 'start_date' ? period.constraint.start_date : '', ...ratesOf(provider, info, period.prices) }));
}

/** A model's rates at one price, with a one-model provider for the library to price them. */
function ratesOf(provider: Provider, info: ModelInfo, price: ModelPrice): ModelRates {
  return { price, libraryProvider: { ...provider, models: [{ ...info, prices: price }] }, fastUnless: fastUnless(price) };
}

function rateAt(rate: number | TieredPrices | undefined, inputTotal: number): number | undefined {
  if (rate === undefined || typeof rate === 'number') return rate;
  let value = rate.base;
  for (const tier of rate.tiers) if (inputTotal > tier.start) value = tier.price;
  return value;
}

function highestRate(rate: number | TieredPrices | undefined): number {
  if (rate === undefined) return 0;
  if (typeof rate === 'number') return rate;
  return Math.max(rate.base, ...rate.tiers.map((t) => t.price));
}

/**
 * Distinct (provider, model) names whose prices are remembered: far more than any app uses, and a bound for apps that
 * pass on model names their users choose. Past it the cache starts over; a model is looked up again on its next call.
 */
export const MAX_RESOLVED_MODELS = 1000;

/** Strips what the price data does not name: `models/`, Vertex resource paths, `openai/`-style prefixes. */
function canonicalModelId(model: string): string {
  const slash = model.lastIndexOf('/');
  return slash === -1 ? model : model.slice(slash + 1);
}

/**
 * Providers that sell another's models at its list prices, for the models the price data has no rates of their own
 * for: Azure OpenAI deployments of OpenAI models.
 */
const PRICED_AS: Readonly<Record<string, string>> = { azure: 'openai' };

/**
 * The price data's model, by the id as the provider spells it (OpenRouter's `openai/gpt-4o`, Together's
 * `meta-llama/...`), else without its prefix (a Vertex resource path, `models/`).
 */
function libraryModel(provider: string, model: string): { model: ModelInfo; provider: Provider } | null {
  const canonical = canonicalModelId(model);
  for (const id of canonical === model ? [model] : [model, canonical]) {
    try {
      const found = calcPrice({}, id, { providerId: provider });
      if (found !== null) return found;
    } catch {
      // Not a model of this provider.
    }
  }
  return null;
}

/**
 * Prices events: the user's overrides first, then the bundled @pydantic/genai-prices data (offline; never updated at
 * run time), then a cost reported with the usage itself. Resolved (provider, model) prices are cached, a bounded number
 * of them; a model's price keys that the fast path knows are priced here without calling the library, and everything
 * else by the library.
 */
export class PriceBook {
  private readonly resolved = new Map<string, ResolvedModel | null>();
  /** Per price without tiers: its reservation rates by the pools a request can reach (null: the price has tiers). */
  private readonly flatRates = new WeakMap<ModelPrice, ReservationRates[] | null>();

  constructor(
    private readonly overrides: Record<string, PriceOverride>,
    private readonly onUnknownModel: (provider: string, model: string) => void,
  ) {}

  /** `inputExcludesCache`: the usage is Anthropic-style, its input_tokens without the cache pools. */
  quote(event: UsageEvent, inputExcludesCache: boolean): PriceQuote {
    const model = this.resolve(event.provider, event.model);
    if (model === null) return { costUsd: 0, source: 'unknown', unknown: true };
    const imagePrice = model.perImage?.(event);
    if (model.perImage !== undefined && imagePrice === undefined) return { costUsd: 0, source: 'unknown', unknown: true };
    const usage = libraryUsage(event, inputExcludesCache);
    const period = ratesAt(model, event.timestamp);
    const library = period.libraryProvider;
    const tierModel = period.price !== null && library !== undefined ? tierRates(event, period.price, library.models[0]!.id) : undefined;
    const rates = tierModel === undefined ? period : ratesOf(library!, library!.models[0]!, tierModel.price);
    const cost =
      imagePrice !== undefined
        ? { costUsd: imagePrice * (event.image_count ?? 0) }
        : rates.price !== null && isFastFor(rates.fastUnless, usage)
          ? fastCost(usage, rates.price)
          : libraryCost(usage, event, rates);
    const tier = tierPrice(event);
    if (tier === undefined) return quoted(cost, model.source, tierModel?.label);
    cost.costUsd *= tier.factor;
    return quoted(cost, model.source, tierModel === undefined ? tier.label : `${tierModel.label}, ${tier.label}`);
  }

  /** The model's context window, when known: no call reads more input than this. */
  contextWindow(provider: string, model: string): number | undefined {
    return this.resolve(provider, model)?.contextWindow;
  }

  /** Undefined for a model without a price. */
  reservationRates(provider: string, model: string, inputTokens: number, pools: InputPools, atMs: number): ReservationRates | undefined {
    const resolved = this.resolve(provider, model);
    // Priced per character or per image: there are no token rates to size a reservation with.
    if (resolved === null || resolved.source === SUPPLEMENTARY_SOURCE) return undefined;
    const price = ratesAt(resolved, utcDay(atMs)).price ?? this.currentPrice(resolved);
    if (price === undefined) return undefined;
    // Rates without tiers are the same for every request: worked out once per set of pools a request can reach.
    let flat = this.flatRates.get(price);
    if (flat === undefined) this.flatRates.set(price, (flat = Object.values(price).some((rate) => typeof rate === 'object') ? null : []));
    const slot = (pools.audio ? 1 : 0) + (pools.cacheWrites ? 2 : 0);
    const known = flat?.[slot];
    if (known !== undefined) return known;
    const rates = reservationRatesOf(price, inputTokens, pools);
    if (flat !== null) flat[slot] = rates;
    return rates;
  }

  private currentPrice(model: ResolvedModel): ModelPrice | undefined {
    return model.libraryProvider === undefined ? undefined : (calcPrice({}, model.libraryProvider.models[0]!.id, { provider: model.libraryProvider })?.model_price ?? undefined);
  }

  private resolve(provider: string, model: string): ResolvedModel | null {
    const key = `${provider}:${model}`;
    const cached = this.resolved.get(key);
    if (cached !== undefined) return cached;
    const resolved = this.lookup(provider, model);
    if (this.resolved.size >= MAX_RESOLVED_MODELS) this.resolved.clear();
    this.resolved.set(key, resolved);
    if (resolved === null) this.onUnknownModel(provider, model);
    return resolved;
  }

  private lookup(provider: string, model: string): ResolvedModel | null {
    const override = this.overrides[`${provider}:${model}`] ?? this.overrides[`${provider}:${canonicalModelId(model)}`];
    if (override !== undefined) return { source: 'config', price: { ...override }, libraryProvider: undefined, fastUnless: [], contextWindow: undefined };
    const modelId = canonicalModelId(model);
    const supplement = supplementaryPrice(provider, modelId);
    const fallback = PRICED_AS[provider];
    const found = libraryModel(provider, model) ?? (fallback === undefined ? null : libraryModel(fallback, model));
    if (found === null) return supplement === undefined ? null : tableModel(provider, modelId, supplement);
    let source = LIBRARY_SOURCE;
    let info = found.model;
    const conditional = Array.isArray(info.prices);
    const lacking = conditional ? [] : Object.entries(supplement?.rates ?? {}).filter(([key]) => !(key in (info.prices as ModelPrice)));
    if (lacking.length > 0) {
      info = { ...info, prices: { ...Object.fromEntries(lacking), ...(info.prices as ModelPrice) } };
      source = `${LIBRARY_SOURCE} + ${SUPPLEMENTARY_SOURCE}`;
    }
    const libraryProvider: Provider = { ...found.provider, models: [info] };
    const price = conditional ? null : (info.prices as ModelPrice);
    const schedule = conditional ? datedSchedule(info, found.provider, info.prices as ConditionalPrice[]) : undefined;
    const resolved: ResolvedModel = { source, price, libraryProvider, fastUnless: fastUnless(price), contextWindow: info.context_window };
    if (schedule !== undefined) resolved.schedule = schedule;
    return resolved;
  }
}

/** The event's counts in the library's terms: `input_tokens` there is ALL input, cache pools included. */
function libraryUsage(event: UsageEvent, inputExcludesCache: boolean): Usage {
  const cachedImage = event.cached_input_image_tokens ?? 0;
  const cacheRead = event.cached_tokens ?? (event.cached_input_text_tokens ?? 0) + cachedImage;
  const cacheWrite = event.cache_creation_tokens ?? 0;
  const input = inputExcludesCache ? event.input_tokens + cacheRead + cacheWrite : event.input_tokens;
  const usage: Usage = { input_tokens: input, output_tokens: event.output_tokens };
  if (cacheRead > 0) usage.cache_read_tokens = cacheRead;
  if (cacheWrite > 0) usage.cache_write_tokens = cacheWrite;
  if ((event.cache_creation_1h_tokens ?? 0) > 0) usage.cache_write_1h_tokens = event.cache_creation_1h_tokens;
  if ((event.web_search_requests ?? 0) > 0) usage.web_searches = event.web_search_requests;
  if ((event.file_search_calls ?? 0) > 0) usage.storage_searches = event.file_search_calls;
  if ((event.audio_input_tokens ?? 0) > 0) usage.input_audio_tokens = event.audio_input_tokens;
  if ((event.audio_output_tokens ?? 0) > 0) usage.output_audio_tokens = event.audio_output_tokens;
  if ((event.input_image_tokens ?? 0) > 0) usage.input_image_tokens = event.input_image_tokens;
  if ((event.input_video_tokens ?? 0) > 0) usage.input_video_tokens = event.input_video_tokens;
  // Cache reads and a modality together: the library needs the cached part of that modality, even when it is zero.
  if ((event.cached_input_audio_tokens ?? 0) > 0 || (cacheRead > 0 && (usage.input_audio_tokens ?? 0) > 0)) {
    usage.cache_audio_read_tokens = event.cached_input_audio_tokens ?? 0;
  }
  if ((event.output_image_tokens ?? 0) > 0) usage.output_image_tokens = event.output_image_tokens;
  if (cachedImage > 0 || (cacheRead > 0 && (usage.input_image_tokens ?? 0) > 0)) usage.cache_image_read_tokens = cachedImage;
  if (event.duration_seconds !== undefined) usage.audio_seconds = event.duration_seconds;
  if ((event.character_count ?? 0) > 0) usage.input_characters = event.character_count;
  return usage;
}

/**
 * Rates of a modality, by the usage key that counts it: with none of that usage in a call, they add nothing to it, and
 * the library would price it as the fast path does (the property test in test/pricing.test.ts holds both to that).
 */
const MODALITY_RATES: Readonly<Record<string, keyof Usage>> = {
  input_audio_mtok: 'input_audio_tokens',
  cache_audio_read_mtok: 'cache_audio_read_tokens',
  output_audio_mtok: 'output_audio_tokens',
  input_image_mtok: 'input_image_tokens',
  cache_image_read_mtok: 'cache_image_read_tokens',
  output_image_mtok: 'output_image_tokens',
  input_video_mtok: 'input_video_tokens',
};

function fastUnless(price: ModelPrice | null): readonly (keyof Usage)[] | null {
  if (price === null) return null;
  const used: (keyof Usage)[] = [];
  for (const key of Object.keys(price)) {
    if (FAST_KEYS.has(key)) continue;
    const usageKey = MODALITY_RATES[key];
    if (usageKey === undefined) return null;
    used.push(usageKey);
  }
  return used;
}

function isFastFor(unless: readonly (keyof Usage)[] | null, usage: Usage): boolean {
  if (unless === null) return false;
  for (const key of unless) if ((usage[key] ?? 0) > 0) return false;
  return true;
}

/** A model only the supplementary table prices: its rates priced by the library's arithmetic, as if its own. */
function tableModel(provider: string, modelId: string, supplement: SupplementaryPrice): ResolvedModel {
  const price = supplement.rates ?? {};
  const info: ModelInfo = { id: modelId, match: { equals: modelId }, prices: price };
  const libraryProvider: Provider = { id: provider, name: provider, api_pattern: '', models: [info] };
  return { source: SUPPLEMENTARY_SOURCE, price, libraryProvider, fastUnless: fastUnless(price), contextWindow: undefined, perImage: supplement.perImage };
}

/** The highest input and output rates a request of `inputTokens` can meet, among the pools it can reach. */
function reservationRatesOf(price: ModelPrice, inputTokens: number, pools: InputPools): ReservationRates {
  let input = 0;
  let output = 0;
  for (const [key, rate] of Object.entries(price)) {
    if (isInputRate(key, pools)) input = Math.max(input, rateAt(rate, inputTokens) ?? 0);
    else if (key.startsWith('output_')) output = Math.max(output, rateAt(rate, inputTokens) ?? 0);
  }
  return { inputPerToken: input / 1e6, outputPerToken: output / 1e6, perRequest: highestRate(price.requests_kcount) / 1000 };
}

/** A cost, made the quote it is (its own fresh object: filled in, not copied; see src/fast-objects.ts). */
function quoted(cost: Omit<PriceQuote, 'source'>, source: string, tier: string | undefined): PriceQuote {
  const quote = cost as PriceQuote;
  quote.source = source;
  if (tier !== undefined) quote.tier = tier;
  return quote;
}

/** The library's arithmetic for text-token prices: each token in exactly one pool, tiers chosen by total input. */
function fastCost(usage: Usage, price: ModelPrice): Omit<PriceQuote, 'source'> {
  const inputTotal = usage.input_tokens ?? 0;
  const cacheRead = price.cache_read_mtok === undefined ? 0 : (usage.cache_read_tokens ?? 0);
  const cacheWriteAll = price.cache_write_mtok === undefined ? 0 : (usage.cache_write_tokens ?? 0);
  const cacheWrite1h = price.cache_write_1h_mtok === undefined ? 0 : Math.min(usage.cache_write_1h_tokens ?? 0, cacheWriteAll);
  let plainInput = inputTotal - cacheRead - cacheWriteAll;
  const inconsistent = plainInput < 0;
  if (inconsistent) plainInput = 0;
  const rate = (key: string) => rateAt(price[key], inputTotal) ?? 0;
  const micro =
    ((usage.web_searches ?? 0) / 1000) * 1e6 * rate('web_searches_kcount') +
    ((usage.storage_searches ?? 0) / 1000) * 1e6 * rate('storage_searches_kcount') +
    plainInput * rate('input_mtok') +
    cacheRead * rate('cache_read_mtok') +
    (cacheWriteAll - cacheWrite1h) * rate('cache_write_mtok') +
    cacheWrite1h * rate('cache_write_1h_mtok') +
    (usage.output_tokens ?? 0) * rate('output_mtok');
  return inconsistent ? { costUsd: micro / 1e6, inconsistent: true } : { costUsd: micro / 1e6 };
}

/** Prices with the library itself; its throw on inconsistent usage becomes a flag, and it must never print. */
function libraryCost(usage: Usage, event: UsageEvent, model: ModelRates): Omit<PriceQuote, 'source'> {
  if (model.libraryProvider === undefined) return fastCost(usage, model.price ?? {});
  // The library warns on the console for price or usage keys it does not know; silenced for this synchronous call.
  const warn = console.warn;
  console.warn = () => undefined;
  try {
    const result = calcPrice(usage, model.libraryProvider.models[0]!.id, { provider: model.libraryProvider, timestamp: new Date(event.timestamp) });
    return { costUsd: result?.total_price ?? 0 };
  } catch {
    if (model.price === null) return { costUsd: 0, inconsistent: true };
    const cost = fastCost(usage, model.price);
    cost.inconsistent = true;
    return cost;
  } finally {
    console.warn = warn;
  }
}
