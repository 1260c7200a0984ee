import { AI_SDK_PATCHES, isAiSdkModel, LANGUAGE_MODEL_TARGETS } from '../patches/ai-sdk.js';
import type { CallSink } from '../patches/calls/call.js';
import { interceptCall } from '../patches/calls/intercept.js';
import { isMetered } from '../patches/calls/wrap-method.js';
import type { HookTarget } from '../patches/provider.js';
import { ConfigError, describeValue } from './errors.js';

/** The AI SDK's language-model middleware versions: ai 5's `v2`, ai 6's `v3`, ai 7's `v4`. */
export type ModelMiddlewareVersion = 'v2' | 'v3' | 'v4';

interface WrapOptions {
  doGenerate: () => PromiseLike<any>;
  doStream: () => PromiseLike<any>;
  params: any;
  model: any;
}

/** A language-model middleware for the AI SDK's `wrapLanguageModel` (typed without the AI SDK's own types). */
export interface ModelMiddleware<V extends ModelMiddlewareVersion> {
  readonly specificationVersion: V;
  readonly middlewareVersion: V;
  wrapGenerate(options: WrapOptions): PromiseLike<any>;
  wrapStream(options: WrapOptions): PromiseLike<any>;
}

const VERSIONS: readonly ModelMiddlewareVersion[] = ['v2', 'v3', 'v4'];

/**
 * Meters and limits the one model it wraps, for apps whose provider packages the load hooks cannot see (bundled into
 * a framework's dist, or a Next.js build). A model whose class the agent already patched is metered there: the
 * middleware then only passes the call on, so a call is never counted twice.
 */
export function modelMiddleware<V extends ModelMiddlewareVersion>(sink: CallSink, version: V): ModelMiddleware<V> {
  if (!VERSIONS.includes(version)) throw new ConfigError(`languageModelMiddleware: version must be one of ${VERSIONS.join(', ')}, got ${describeValue(version)}`);
  const metered = (target: HookTarget, method: 'doGenerate' | 'doStream', { model, params, doGenerate, doStream }: WrapOptions): PromiseLike<any> => {
    const passOn = method === 'doGenerate' ? doGenerate : doStream;
    if (!isAiSdkModel(model) || isMetered(model[method])) return passOn();
    const patch = AI_SDK_PATCHES.findLast((p) => p.isClient(model))!;
    // The model's own method with the params as the agent sends them (strict mode may add an output cap).
    const send = (sent: unknown): unknown => model[method](sent);
    return interceptCall(patch, target, sink, send, model, [params]) as PromiseLike<any>;
  };
  return {
    specificationVersion: version,
    middlewareVersion: version,
    wrapGenerate: (options) => metered(LANGUAGE_MODEL_TARGETS.generate, 'doGenerate', options),
    wrapStream: (options) => metered(LANGUAGE_MODEL_TARGETS.stream, 'doStream', options),
  };
}
