import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { collectingMeter, LimitExceededError, repoRoot, requireFrom, requireFromRepo, until } from './helpers.js';

// What a limited call costs the app before it leaves: its input estimate. It must cost no more than the SDK's own
// serialisation (JSON.stringify), read what that reads (toJSON included), and never hang or throw into the call.

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const { OpenAI } = requireFrom(repoRoot, 'openai');
// Input $0.50 per million tokens, output free: a reservation is the strict input bound (UTF-8 bytes plus framing).
const { meter, events } = collectingMeter({ prices: { 'openai:gpt-4o': { input_mtok: 0.5, output_mtok: 0 } }, maxInputTokens: 20_000_000, handleExit: false });
const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
afterAll(() => meter.shutdown());
afterEach(() => {
  events.length = 0;
});

let tenants = 0;
/** A tenant of its own for each use, with that limit. */
async function limitedTenant(limitUsd: number): Promise<string> {
  const tenant = `tenant-${++tenants}`;
  await meter.setLimit(tenant, { limitUsd, frequency: 'per_day' });
  return tenant;
}

const complete = (tenant: string, messages: unknown): Promise<unknown> =>
  meter.forTenant(tenant, () => client.chat.completions.create({ model: 'gpt-4o', messages: messages as never }));

/** The reservation a call asks for: what a tenant at $0 is refused for. */
async function requestUsd(messages: unknown): Promise<number> {
  const err = await complete(await limitedTenant(0), messages).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LimitExceededError);
  return (err as InstanceType<typeof LimitExceededError>).requestUsd!;
}

/** An admitted call went out, billed to its tenant, and its reservation settled at the event's cost. */
async function expectSettled(tenant: string): Promise<void> {
  await until(() => events.some((e) => e.tenant_id === tenant), 'the event');
  const event = events.find((e) => e.tenant_id === tenant)!;
  expect(event.error).toBeUndefined();
  const [day] = await meter.getUsage(tenant);
  expect(day!.reservedUsd).toBe(0);
  expect(Math.round(day!.spentUsd * 1e9)).toBe(Math.round(event.cost_usd! * 1e9));
}

// ORM-style records: each message serialises through toJSON to { role, content } and holds its conversation, whose
// `messages` reach every message again. Reading the conversation is what no serialiser does; a walk that reads it
// anyway trips the wire at once rather than hanging the test for hours.
const TRIPWIRE = 1000;

interface Conversation {
  id: string;
  messages: unknown[];
  /** How often something read `messages`. */
  reads: number;
  /** How often a message's toJSON ran. */
  serialised: number;
}

function conversation(): Conversation {
  const list: unknown[] = [];
  return {
    id: 'c1',
    get messages() {
      if (++this.reads > TRIPWIRE) throw new Error('the conversation graph was walked');
      return list;
    },
    reads: 0,
    serialised: 0,
  };
}

/** A message as a plain object: the shape that made the estimate walk the whole graph. */
function plainMessage(conversation: Conversation, role: string, content: string): object {
  return {
    role,
    content,
    conversation,
    toJSON() {
      conversation.serialised++;
      return { role, content };
    },
  };
}

/** A message as a class instance: the shape the estimate skipped, measuring nothing of it. */
class Message {
  constructor(
    readonly conversation: Conversation,
    readonly role: string,
    readonly content: string,
  ) {}

  toJSON() {
    this.conversation.serialised++;
    return { role: this.role, content: this.content };
  }
}
const classMessage = (conversation: Conversation, role: string, content: string): object => new Message(conversation, role, content);

const MESSAGES = 50;

function conversationOf(message: typeof plainMessage): { conversation: Conversation; messages: unknown[]; json: unknown[] } {
  const c = conversation();
  const list = c.messages;
  for (let i = 0; i < MESSAGES; i++) list.push(message(c, i % 2 === 0 ? 'user' : 'assistant', `message ${i}: ${'é'.repeat(i)}`));
  c.reads = 0;
  const messages = [...list];
  return { conversation: c, messages, json: JSON.parse(JSON.stringify(messages)) as unknown[] };
}

describe('messages that serialise through toJSON and hold their conversation (a cycle JSON.stringify never sees)', () => {
  it.each([
    ['plain objects', plainMessage],
    ['class instances', classMessage],
  ])('%s: measured as the JSON the SDK sends, each toJSON run once, the conversation never read', async (_, message) => {
    const { conversation, messages, json } = conversationOf(message);
    const expected = await requestUsd(json);
    conversation.serialised = 0;
    expect(await requestUsd(messages)).toBe(expected);
    expect(conversation.serialised).toBe(MESSAGES);
    expect(conversation.reads).toBe(0);
    expect(fake.count()).toBe(0);
  });

  it.each([
    ['plain objects', plainMessage],
    ['class instances', classMessage],
  ])('%s: a tenant with nothing spent of a 10 USD limit is admitted, and the provider gets the messages as JSON', async (_, message) => {
    const { conversation, messages, json } = conversationOf(message);
    const tenant = await limitedTenant(10);
    await complete(tenant, messages);
    expect(fake.requests[0]!.body.messages).toEqual(json);
    expect(conversation.reads).toBe(0);
    await expectSettled(tenant);
    expect(meter.faults).toBe(0);
  });
});

describe('a request JSON.stringify cannot serialise: the estimate stops where it does, and never throws into the call', () => {
  /** Messages without toJSON: their `conversation` leads back to every message (JSON.stringify throws on it). */
  function cyclic(): { conversation: Conversation; messages: unknown[] } {
    const c = conversation();
    const list = c.messages;
    for (let i = 0; i < MESSAGES; i++) list.push({ role: 'user', content: `message ${i}`, conversation: c });
    c.reads = 0;
    return { conversation: c, messages: [...list] };
  }

  it('a cycle: read no further than JSON.stringify reads before it throws; the input is unbounded', async () => {
    const { conversation, messages } = cyclic();
    expect(() => JSON.stringify(messages)).toThrow(TypeError);
    const readsBySerialising = conversation.reads;
    conversation.reads = 0;
    // Unbounded: the whole maxInputTokens (20 M tokens at $0.50 a million), at once.
    expect(await requestUsd(messages)).toBeCloseTo(10, 9);
    expect(conversation.reads).toBeLessThanOrEqual(readsBySerialising);
  });

  it('a cycle, admitted: the caller gets the SDK\'s own error, and nothing stays reserved', async () => {
    const tenant = await limitedTenant(100);
    const err = await complete(tenant, cyclic().messages).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toMatch(/circular/i);
    expect(fake.count()).toBe(0);
    const [day] = await meter.getUsage(tenant);
    expect(day!.reservedUsd).toBe(0);
    expect(meter.faults).toBe(0);
  });

  const lazyLoadFailed = new Error('lazy load failed');
  it.each([
    ['a getter', () => [{ role: 'user', get content(): string { throw lazyLoadFailed; } }]],
    ['a toJSON', () => [{ role: 'user', content: 'x', toJSON: () => { throw lazyLoadFailed; } }]],
  ])('%s that throws: the limit still holds (the input is unbounded), and an admitted call gets the SDK\'s own error', async (_, messages) => {
    expect(await requestUsd(messages())).toBeCloseTo(10, 9);
    const tenant = await limitedTenant(100);
    await expect(complete(tenant, messages())).rejects.toBe(lazyLoadFailed);
    const [day] = await meter.getUsage(tenant);
    expect(day!.reservedUsd).toBe(0);
    expect(meter.faults).toBe(0);
  });
});

describe('a 10 MB prompt', () => {
  const prompt = 'é'.repeat(5_000_000); // 10 MB of UTF-8, 5 M characters: up to 10 M tokens
  it.each([
    ['a string', () => [{ role: 'user', content: prompt }]],
    ['a message object with toJSON', () => [new Message(conversation(), 'user', prompt)]],
  ])('as %s: reserved for its size, refused below it and admitted above it', async (_, messages) => {
    const usd = await requestUsd(messages());
    expect(usd).toBeGreaterThanOrEqual(10_000_000 * 0.5e-6);
    expect(usd).toBeLessThan(10_001_000 * 0.5e-6);
    const tight = await limitedTenant(4.99);
    await expect(complete(tight, messages())).rejects.toBeInstanceOf(LimitExceededError);
    const tenant = await limitedTenant(10);
    await complete(tenant, messages());
    expect(fake.requests[0]!.body.messages[0].content).toBe(prompt);
    await expectSettled(tenant);
  });
});

describe('memory stays bounded: the price cache', () => {
  const { PriceBook, MAX_RESOLVED_MODELS } = requireFromRepo('./dist/src/pricing/price-book.js');

  it('100,000 distinct model names (an app passing on what its users choose) keep it within its bound', () => {
    const book = new PriceBook({}, () => false, () => undefined);
    const event = (provider: string, model: string) => ({ provider, model, input_tokens: 1000, output_tokens: 100, timestamp: '2026-01-01T00:00:00Z' });
    const known = book.quote(event('openai', 'gpt-4o'));
    expect(known.costUsd).toBeGreaterThan(0);
    const cached = (): number => (book as { resolved: Map<string, unknown> }).resolved.size;
    for (let i = 0; i < 100_000; i++) {
      const model = `user-model-${i}-${Math.random().toString(36).slice(2)}`;
      book.quote(event('anthropic', model));
      book.reservationRates('anthropic', model, 100, { audio: false, cacheWrites: false });
      if (i % 1000 === 0) expect(cached()).toBeLessThanOrEqual(MAX_RESOLVED_MODELS);
    }
    expect(cached()).toBeLessThanOrEqual(MAX_RESOLVED_MODELS);
    expect(book.quote(event('openai', 'gpt-4o'))).toEqual(known);
  });
});
