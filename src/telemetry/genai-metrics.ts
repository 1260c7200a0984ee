import { createRequire } from 'node:module';
import { ConfigError } from '../errors.js';
import type { UsageEvent } from '../event.js';

/** The app's OpenTelemetry MeterProvider, typed by its shape: the published types never need @opentelemetry/api. */
export interface OtelMeterProvider {
  getMeter(name: string, version?: string): unknown;
}

export interface OpenTelemetryOptions {
  /** Default: the global MeterProvider of @opentelemetry/api, which the app's OpenTelemetry SDK registers. */
  meterProvider?: OtelMeterProvider;
  /** The attribute that carries the tenant id (default `llm_meter.tenant_id`); `false` leaves it out (fewer series). */
  tenantAttribute?: string | false;
}

type Attributes = Record<string, string>;
interface Histogram {
  record(value: number, attributes?: Attributes): void;
}
interface Counter {
  add(value: number, attributes?: Attributes): void;
}
interface OtelMeter {
  createHistogram(name: string, options: { description: string; unit: string; advice?: { explicitBucketBoundaries: number[] } }): Histogram;
  createCounter(name: string, options: { description: string; unit: string }): Counter;
}

const DEFAULT_TENANT_ATTRIBUTE = 'llm_meter.tenant_id';

/** The bucket boundaries the GenAI semantic conventions advise. */
const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
const DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

/** `gen_ai.operation.name` by the agent's endpoint; an endpoint the conventions have no name for keeps its own. */
const OPERATIONS: Record<string, string> = {
  'chat.completions': 'chat',
  responses: 'chat',
  messages: 'chat',
  'beta.messages': 'chat',
  converse: 'chat',
  'converse.stream': 'chat',
  'invoke_model': 'chat',
  'invoke_model.stream': 'chat',
  'agents.completions': 'chat',
  generate: 'chat',
  generateContent: 'generate_content',
  streamGenerateContent: 'generate_content',
  completions: 'text_completion',
  'fim.completions': 'text_completion',
  embeddings: 'embeddings',
  embedContent: 'embeddings',
  'batches.createEmbeddings': 'embeddings',
};

/** `gen_ai.provider.name` by the agent's provider id, where the conventions spell it otherwise. */
const PROVIDER_NAMES: Record<string, string> = {
  google: 'gcp.gen_ai',
  aws: 'aws.bedrock',
  azure: 'azure.ai.openai',
  mistral: 'mistral_ai',
  'x-ai': 'x_ai',
};

function providerName(event: UsageEvent): string {
  if (event.provider === 'google' && event.host !== undefined) {
    if (event.host.includes('aiplatform.googleapis.com')) return 'gcp.vertex_ai';
    if (event.host.includes('generativelanguage.googleapis.com')) return 'gcp.gemini';
  }
  return PROVIDER_NAMES[event.provider] ?? event.provider;
}

/**
 * The OpenTelemetry GenAI client metrics of each usage event: `gen_ai.client.token.usage` (billable input and output
 * tokens), `gen_ai.client.operation.duration`, and a cost counter of the agent's own (`llm_meter.client.cost`, USD:
 * the conventions have none).
 */
export class GenAiMetrics {
  private readonly tokens: Histogram;
  private readonly duration: Histogram;
  private readonly cost: Counter;

  constructor(
    meter: OtelMeter,
    private readonly tenantAttribute: string | undefined,
  ) {
    this.tokens = meter.createHistogram('gen_ai.client.token.usage', {
      description: 'Number of input and output tokens used',
      unit: '{token}',
      advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
    });
    this.duration = meter.createHistogram('gen_ai.client.operation.duration', {
      description: 'GenAI operation duration',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.cost = meter.createCounter('llm_meter.client.cost', { description: 'Cost of GenAI operations at their price', unit: '{USD}' });
  }

  /**
   * One call's metrics. `inputExcludesCache`: the provider counts input without cache reads and writes (Anthropic); the
   * conventions count them in.
   */
  record(event: UsageEvent, requestModel: string | undefined, inputExcludesCache: boolean): void {
    const attributes: Attributes = {
      'gen_ai.operation.name': OPERATIONS[event.endpoint] ?? event.endpoint,
      'gen_ai.provider.name': providerName(event),
      'gen_ai.response.model': event.model,
    };
    if (requestModel !== undefined) attributes['gen_ai.request.model'] = requestModel;
    if (event.host !== undefined) attributes['server.address'] = event.host.replace(/:\d+$/, '');
    if (this.tenantAttribute !== undefined && event.tenant_id !== undefined) attributes[this.tenantAttribute] = event.tenant_id;
    if (event.error !== undefined) attributes['error.type'] = event.error;
    this.duration.record(event.duration_ms / 1000, attributes);
    if (event.input_tokens > 0 || event.output_tokens > 0) {
      const input = event.input_tokens + (inputExcludesCache ? (event.cached_tokens ?? 0) + (event.cache_creation_tokens ?? 0) : 0);
      this.tokens.record(input, { ...attributes, 'gen_ai.token.type': 'input' });
      this.tokens.record(event.output_tokens, { ...attributes, 'gen_ai.token.type': 'output' });
    }
    if (event.cost_usd !== undefined && event.cost_usd > 0) this.cost.add(event.cost_usd, attributes);
  }
}

/** The metrics on the app's MeterProvider (or the global one); `@opentelemetry/api` is loaded only here. */
export function createGenAiMetrics(options: OpenTelemetryOptions): GenAiMetrics {
  const provider = options.meterProvider ?? globalMeterProvider();
  const tenantAttribute = options.tenantAttribute === false ? undefined : (options.tenantAttribute ?? DEFAULT_TENANT_ATTRIBUTE);
  return new GenAiMetrics(provider.getMeter('llm-meter') as OtelMeter, tenantAttribute);
}

function globalMeterProvider(): OtelMeterProvider {
  let api: { metrics: { getMeterProvider(): OtelMeterProvider } };
  try {
    api = createRequire(__filename)('@opentelemetry/api') as typeof api;
  } catch {
    throw new ConfigError('openTelemetry needs the @opentelemetry/api package (or a meterProvider): npm install @opentelemetry/api');
  }
  return api.metrics.getMeterProvider();
}
