import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectingMeter, requireFromRepo } from './helpers.js';
import type { ManualUsage, ProviderId } from 'llm-meter';

const genaiPrices = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');
const librarySource = `@pydantic/genai-prices@${(requireFromRepo('./package.json') as { devDependencies?: Record<string, string>; dependencies: Record<string, string> }).dependencies['@pydantic/genai-prices']}`;

function priced(usage: ManualUsage, options = {}) {
  const { meter, events } = collectingMeter(options);
  meter.trackManually(usage);
  return events[0]!;
}

describe('cost of a call, against hand-computed figures', () => {
  it('gpt-4o: $2.50 in, $10 out per million', () => {
    const e = priced({ provider: 'openai', model: 'gpt-4o-2024-08-06', input_tokens: 1000, output_tokens: 500 });
    expect(e.cost_usd).toBeCloseTo(1000 * 2.5e-6 + 500 * 10e-6, 12);
    expect(e.price_source).toBe(librarySource);
  });

  it('cached input: cached tokens are a subset of input, billed at the cache-read rate', () => {
    const e = priced({ provider: 'openai', model: 'gpt-4o', input_tokens: 1000, cached_tokens: 600, output_tokens: 100 });
    expect(e.cost_usd).toBeCloseTo(400 * 2.5e-6 + 600 * 1.25e-6 + 100 * 10e-6, 12);
  });

  it('reasoning model: reasoning tokens are part of output, never counted twice', () => {
    const e = priced({ provider: 'openai', model: 'o3-mini', input_tokens: 1000, output_tokens: 500, reasoning_tokens: 300 });
    expect(e.cost_usd).toBeCloseTo(1000 * 1.1e-6 + 500 * 4.4e-6, 12);
  });

  it('over 200k tokens of context: the higher tier applies to the whole call', () => {
    const e = priced({ provider: 'google', model: 'gemini-2.5-pro', input_tokens: 250_000, output_tokens: 1000 });
    expect(e.cost_usd).toBeCloseTo(250_000 * 2.5e-6 + 1000 * 15e-6, 12);
  });

  it('anthropic: input excludes cache pools; 5m and 1h cache writes at their own rates', () => {
    const e = priced({
      provider: 'anthropic',
      model: 'claude-sonnet-4-5-20250929',
      input_tokens: 1000,
      cached_tokens: 2000,
      cache_creation_tokens: 500,
      cache_creation_1h_tokens: 200,
      output_tokens: 100,
    });
    expect(e.cost_usd).toBeCloseTo(1000 * 3e-6 + 2000 * 0.3e-6 + 300 * 3.75e-6 + 200 * 6e-6 + 100 * 15e-6, 12);
  });

  it('an unknown model: price_unknown, cost 0, one debug line per model', () => {
    const e = priced({ provider: 'openai', model: 'my-private-model', input_tokens: 10, output_tokens: 10 });
    expect(e).toMatchObject({ cost_usd: 0, price_unknown: true, price_source: 'unknown' });
  });

  it('a price override wins over the bundled data', () => {
    const e = priced(
      { provider: 'openai', model: 'gpt-4o', input_tokens: 1000, output_tokens: 1000 },
      { prices: { 'openai:gpt-4o': { input_mtok: 1, output_mtok: 2 } } },
    );
    expect(e.cost_usd).toBeCloseTo(0.003, 12);
    expect(e.price_source).toBe('config');
  });

  // Prices the bundled data lacks come from llm-meter's dated table (src/pricing/supplementary.ts, README "Cost").
  it.each([
    ['tts-1', 15],
    ['tts-1-hd', 30],
  ])('%s: billed per input character, $%d per million (llm-meter table)', (model, perMillion) => {
    expect(genaiPrices.calcPrice({}, model, { providerId: 'openai' })).toBeNull();
    const e = priced({ provider: 'openai', model, input_tokens: 0, output_tokens: 0, character_count: 2000 });
    expect(e).toMatchObject({ price_source: 'llm-meter table 2026-11' });
    expect(e.cost_usd).toBeCloseTo((2000 * perMillion) / 1e6, 12);
  });

  it('gpt-4o-audio-preview: the bundled text rates, and audio at $40 in / $80 out per million from the table', () => {
    const e = priced({ provider: 'openai', model: 'gpt-4o-audio-preview-2024-12-17', input_tokens: 1000, audio_input_tokens: 600, output_tokens: 300, audio_output_tokens: 200 });
    expect(e.price_source).toBe(`${librarySource} + llm-meter table 2026-11`);
    expect(e.cost_usd).toBeCloseTo((400 * 2.5 + 600 * 40 + 100 * 10 + 200 * 80) / 1e6, 12);
  });

  it('a price override wins over the table too', () => {
    const usage: ManualUsage = { provider: 'openai', model: 'gpt-4o-audio-preview-2024-12-17', input_tokens: 1000, audio_input_tokens: 600, output_tokens: 100 };
    const e = priced(usage, { prices: { 'openai:gpt-4o-audio-preview-2024-12-17': { input_mtok: 1, output_mtok: 2 } } });
    expect(e.price_source).toBe('config');
    expect(e.cost_usd).toBeCloseTo((1000 * 1 + 100 * 2) / 1e6, 12);
    const tts = priced({ provider: 'openai', model: 'tts-1', input_tokens: 0, output_tokens: 0, character_count: 2000 }, { prices: { 'openai:tts-1': { input_mtok: 1, output_mtok: 1 } } });
    expect(tts).toMatchObject({ price_source: 'config', cost_usd: 0 });
  });

  // OpenAI priority processing ("Fast mode" since 2026-07-30) has its own rates per model, [input, cached, output] per
  // million (openai.com/api-priority-processing, api-fast-mode): gpt-5 $2.50 / $0.25 / $20 (standard $1.25 / $0.125 / $10);
  // gpt-4o-mini $0.25 / $0.125 / $1.00 (standard $0.15 / $0.075 / $0.60), not a single multiplier; web searches keep
  // their $10 per thousand.
  it.each([
    ['gpt-5-2025-08-07', 'priority', 2.5, 0.25, 20],
    ['gpt-4o-mini-2024-07-18', 'fast', 0.25, 0.125, 1],
    ['o4-mini', 'priority', 2, 0.5, 8],
  ])('%s served at service_tier %s: the priority rates', (model, tier, input, cached, output) => {
    const e = priced({ provider: 'openai', model, service_tier: tier, input_tokens: 1000, cached_tokens: 400, output_tokens: 300, web_search_requests: 1 });
    expect(e.cost_usd).toBeCloseTo((600 * input + 400 * cached + 300 * output) / 1e6 + 0.01, 12);
    expect(e.price_tier).toMatch(new RegExp(`^service_tier=${tier} \\(.+ priority rates\\)$`));
  });

  it('gpt-4o-2024-05-13 at priority: no cached rate, so cached input is billed as input', () => {
    const e = priced({ provider: 'openai', model: 'gpt-4o-2024-05-13', service_tier: 'priority', input_tokens: 1000, cached_tokens: 400, output_tokens: 300 });
    expect(e.cost_usd).toBeCloseTo((1000 * 8.75 + 300 * 26.25) / 1e6, 12);
  });

  it('priority on a model without published priority rates, or served as default: the standard price, no tier', () => {
    const unpublished = priced({ provider: 'openai', model: 'gpt-4o-audio-preview-2024-12-17', service_tier: 'priority', input_tokens: 1000, output_tokens: 100 });
    expect(unpublished.price_tier).toBeUndefined();
    const standard = priced({ provider: 'openai', model: 'gpt-5', service_tier: 'default', input_tokens: 1000, output_tokens: 100 });
    expect(standard).toMatchObject({ cost_usd: (1000 * 1.25 + 100 * 10) / 1e6 });
    expect(standard.price_tier).toBeUndefined();
  });

  it('manual usage takes the billing terms too: a flex row at half price', () => {
    const e = priced({ provider: 'openai', model: 'gpt-5', service_tier: 'flex', input_tokens: 1000, output_tokens: 100 });
    expect(e).toMatchObject({ service_tier: 'flex', price_tier: 'service_tier=flex x0.5', cost_usd: ((1000 * 1.25 + 100 * 10) / 1e6) * 0.5 });
    expect(() => priced({ provider: 'openai', model: 'gpt-5', service_tier: 7 as any, input_tokens: 1, output_tokens: 1 })).toThrow(/service_tier must be a non-empty string, got 7/);
  });

  it('a reported cost is the truth for the call, with the agent\'s own estimate beside it where it knows a price', () => {
    const unknown = priced({ provider: 'openrouter', model: 'x/y', input_tokens: 1, output_tokens: 1, cost_usd: 0.5 });
    expect(unknown).toMatchObject({ cost_usd: 0.5, price_source: 'reported' });
    expect(unknown.estimated_cost_usd).toBeUndefined();
    expect(unknown.price_unknown).toBeUndefined();
    // gpt-4o: $2.50 / $10 per million input / output tokens.
    const known = priced({ provider: 'openai', model: 'gpt-4o', input_tokens: 1000, output_tokens: 100, cost_usd: 0.5 });
    expect(known).toMatchObject({ cost_usd: 0.5, price_source: 'reported', estimated_cost_usd: (1000 * 2.5 + 100 * 10) / 1e6 });
  });

  it('inconsistent usage (more cached than input) is flagged, never thrown, never printed', () => {
    const e = priced({ provider: 'openai', model: 'gpt-4o', input_tokens: 10, cached_tokens: 50, output_tokens: 1 });
    expect(e.price_inconsistent).toBe(true);
    expect(e.cost_usd).toBeGreaterThan(0);
  });

  it.each([
    [{ 'gpt-4o': { input_mtok: 1, output_mtok: 1 } }, /key "gpt-4o" must be 'provider:model'/],
    [{ 'openai:x': { input_mtok: -1, output_mtok: 1 } }, /prices\["openai:x"\].input_mtok must be a finite, non-negative number, got -1/],
    [{ 'openai:x': { input_mtok: 1 } }, /output_mtok must be a finite, non-negative number, got undefined/],
    [{ 'openai:x': { input_mtok: 1, output_mtok: 1, per_image: 3 } }, /unknown field "per_image"/],
  ])('a bad price override is refused: %o', (prices, message) => {
    expect(() => collectingMeter({ prices: prices as any })).toThrow(message);
  });
});

describe('the cached fast path prices exactly as the library (text, cache pools, searches; modalities through the library)', () => {
  const models = (['openai', 'anthropic', 'google'] as const).flatMap((providerId: ProviderId) =>
    genaiPrices
      .findProvider({ providerId })!
      .models.filter((m) => !Array.isArray(m.prices) && genaiPrices.calcPrice({}, m.id, { providerId })?.model.id === m.id)
      .map((m) => ({ providerId, id: m.id })),
  );
  const { meter, events } = collectingMeter();

  it(`for random usage on ${models.length} models`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...models),
        fc.nat(400_000),
        fc.nat(50_000),
        fc.nat(100),
        fc.nat(100),
        fc.record({ searches: fc.nat(3), fileSearches: fc.nat(3), audioPct: fc.nat(100), imageOutPct: fc.nat(100) }),
        ({ providerId, id }, input, output, cachedPct, writePct, { searches, fileSearches, audioPct, imageOutPct }) => {
          const cached = Math.floor((input * cachedPct) / 200);
          const written = Math.floor((input * writePct) / 200);
          // Modalities are a part of their count: audio of the uncached input, image tokens of the output.
          const audio = Math.floor(((input - cached - written) * audioPct) / 100);
          const imageOut = Math.floor((output * imageOutPct) / 100);
          events.length = 0;
          const anthropic = providerId === 'anthropic';
          meter.trackManually({
            provider: providerId,
            model: id,
            input_tokens: anthropic ? input - cached - written : input,
            cached_tokens: cached,
            cache_creation_tokens: written,
            output_tokens: output,
            web_search_requests: searches,
            file_search_calls: fileSearches,
            audio_input_tokens: audio,
            output_image_tokens: imageOut,
          });
          const usage = {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cached || undefined,
            cache_write_tokens: written || undefined,
            web_searches: searches || undefined,
            storage_searches: fileSearches || undefined,
            input_audio_tokens: audio || undefined,
            // The library needs the cached audio (none here) once cache reads and audio input are both present.
            cache_audio_read_tokens: cached > 0 && audio > 0 ? 0 : undefined,
            output_image_tokens: imageOut || undefined,
          };
          const expected = genaiPrices.calcPrice(usage, id, { providerId })!.total_price;
          // A rate the library lacks comes from the project's table (tested on its own above), and says so.
          if (events[0]!.price_source !== librarySource) {
            expect(events[0]!.price_source).toBe(`${librarySource} + llm-meter table 2026-11`);
            return;
          }
          // Events carry whole nano-dollars: within half a nano-dollar of the library (and its float noise).
          expect(Math.abs(events[0]!.cost_usd! - expected)).toBeLessThan(0.6e-9);
        },
      ),
      { numRuns: 500 },
    );
  });

  // A model with audio, image or video rates, on a call with none of them: priced by the fast path, as the library would.
  const modal = models.filter(({ providerId, id }) => {
    const price = genaiPrices.calcPrice({}, id, { providerId })!.model_price as Record<string, unknown>;
    return Object.keys(price).some((key) => /(audio|image|video)/.test(key));
  });

  it(`text-only calls on ${modal.length} models that also have modality rates`, () => {
    expect(modal.map((m) => m.id)).toContain('gemini-2.5-flash');
    fc.assert(
      fc.property(fc.constantFrom(...modal), fc.nat(400_000), fc.nat(50_000), fc.nat(100), fc.nat(3), ({ providerId, id }, input, output, cachedPct, searches) => {
        const cached = Math.floor((input * cachedPct) / 200);
        events.length = 0;
        const anthropic = providerId === 'anthropic';
        meter.trackManually({ provider: providerId, model: id, input_tokens: anthropic ? input - cached : input, cached_tokens: cached, output_tokens: output, web_search_requests: searches });
        const usage = { input_tokens: input, output_tokens: output, cache_read_tokens: cached || undefined, web_searches: searches || undefined };
        const expected = genaiPrices.calcPrice(usage, id, { providerId })!.total_price;
        if (events[0]!.price_source !== librarySource) return;
        expect(Math.abs(events[0]!.cost_usd! - expected)).toBeLessThan(0.6e-9);
      }),
      { numRuns: 500 },
    );
  });

  // Prices that change on a date (claude-sonnet-4-6, claude-opus-4-6, ...) are resolved into one period per date: each
  // call is priced by the period its timestamp falls in, as the library would, on either side of every boundary.
  const scheduled = (['openai', 'anthropic', 'google'] as const).flatMap((providerId: ProviderId) =>
    genaiPrices
      .findProvider({ providerId })!
      .models.filter((m) => Array.isArray(m.prices) && m.prices.every((p) => p.constraint === undefined || p.constraint.type === 'start_date'))
      .map((m) => ({ providerId, id: m.id, dates: (m.prices as { constraint?: { start_date: string } }[]).flatMap((p) => (p.constraint ? [p.constraint.start_date] : [])) })),
  );

  it(`priced by the period of their date, on ${scheduled.length} models with a dated price change`, () => {
    expect(scheduled.map((m) => m.id)).toContain('claude-sonnet-4-6');
    fc.assert(
      fc.property(
        fc.constantFrom(...scheduled),
        fc.integer({ min: -3, max: 3 }),
        fc.nat(400_000),
        fc.nat(50_000),
        fc.nat(100),
        ({ providerId, id, dates }, offsetMs, input, output, cachedPct) => {
          // Around a boundary, to the millisecond.
          const timestamp = new Date(Date.parse(`${dates[0]}T00:00:00Z`) + offsetMs).toISOString();
          const cached = Math.floor((input * cachedPct) / 200);
          events.length = 0;
          const anthropic = providerId === 'anthropic';
          meter.trackManually({ provider: providerId, model: id, timestamp, input_tokens: anthropic ? input - cached : input, cached_tokens: cached, output_tokens: output });
          const usage = { input_tokens: input, output_tokens: output, cache_read_tokens: cached || undefined };
          const expected = genaiPrices.calcPrice(usage, id, { providerId, timestamp: new Date(timestamp) })!.total_price;
          expect(Math.abs(events[0]!.cost_usd! - expected)).toBeLessThan(0.6e-9);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('money as billing systems take it', () => {
  it('every cost is a whole number of nano-dollars: never more than 15 significant digits, never float noise', () => {
    // gpt-4o input $2.50 per million: 1 token is $0.0000025; 0.1 + 0.2 style noise must never reach the event.
    fc.assert(
      fc.property(fc.nat(2_000_000), fc.nat(200_000), fc.nat(2_000_000), (input, output, cached) => {
        const e = priced({ provider: 'openai', model: 'gpt-4o', input_tokens: input + cached, output_tokens: output, cached_tokens: cached });
        const nano = e.cost_usd! * 1e9;
        expect(Math.abs(nano - Math.round(nano))).toBeLessThan(1e-6);
        expect(Number(e.cost_usd!.toPrecision(15))).toBe(e.cost_usd);
      }),
    );
    expect(priced({ provider: 'openai', model: 'gpt-4o-mini', input_tokens: 1, output_tokens: 0 }).cost_usd).toBe(1.5e-7);
  });
});
