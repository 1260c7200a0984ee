import type { CallSink, MeteredCall } from './call.js';
import { isApiPromise, observeApiPromise } from './api-promise.js';
import { observeResult, type Observation } from './observe.js';
import type { HookTarget, ProviderPatch } from './provider.js';
import { bindStreamToCallerContext } from './context.js';
import { withCap, type CapToSend } from './output-bound.js';
import { refusedResult } from './refuse.js';
import { runBehindGate, type OptionsRewrite } from './request-gate.js';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * The body of every hooked method: start a metered call (tenant and clock captured now), run the SDK's own method,
 * and observe its result without changing it. A fault in the agent's own steps never stops the call.
 */
export function interceptCall(
  provider: ProviderPatch,
  target: HookTarget,
  sink: CallSink,
  original: Function,
  thisArg: unknown,
  args: unknown[],
): unknown {
  if (target.bindsCallerContext === true) return bindStreamToCallerContext(Reflect.apply(original, thisArg, args));
  let call: MeteredCall;
  try {
    call = sink.begin(provider, target, args);
  } catch (fault) {
    sink.fault(fault);
    return Reflect.apply(original, thisArg, args);
  }
  // A refused call must never fall through to the SDK, whatever happens below.
  if (call.refusal !== undefined) {
    call.finish({ error: call.refusal });
    return refusedResult(provider.style, thisArg, call.refusal);
  }
  let callArgs: unknown[] = args;
  let hideInjected = false;
  try {
    const prepared = target.prepare?.(args, thisArg);
    if (prepared !== undefined) {
      callArgs = prepared.args;
      hideInjected = prepared.hideInjected;
    }
  } catch (fault) {
    call.fault(fault);
  }

  const run = (cap: CapToSend | undefined): unknown => {
    const sentArgs = cap === undefined ? callArgs : [withCap(callArgs[0], cap), ...callArgs.slice(1)];
    return runAndObserve(provider, target, call, original, thisArg, sentArgs, args, hideInjected);
  };
  const admission = call.admission;
  if (admission === undefined) return run(call.sendOutputCap);
  if (provider.style === 'promise') {
    return admission.then(run, (refusal: unknown) => {
      call.finish({ error: refusal });
      throw refusal;
    });
  }
  // A Stainless request is already built when the admission answers: the cap goes into the body of its options.
  const gate = admission.then((cap): OptionsRewrite => (cap === undefined ? undefined : (options) => ({ ...options, body: withCap(options.body, cap) })));
  const { result, gated } = runBehindGate(gate, () => run(undefined));
  if (!gated) call.fault(new Error(`${provider.name} ${target.endpoint}: no request gate; the spend check could not hold this request`));
  return result;
}

/** Runs the SDK's own method and observes its result without changing it. */
function runAndObserve(
  provider: ProviderPatch,
  target: HookTarget,
  call: MeteredCall,
  original: Function,
  thisArg: unknown,
  callArgs: unknown[],
  args: unknown[],
  hideInjected: boolean,
): unknown {
  let result: unknown;
  try {
    result = Reflect.apply(original, thisArg, callArgs);
  } catch (err) {
    call.abandon();
    throw err;
  }

  const observation: Observation = { call, target, args, hideInjected, requestIdHeader: provider.requestIdHeader, rawTaken: false };
  try {
    if (provider.style === 'api-promise' && isApiPromise(result)) {
      observeApiPromise(result, observation);
      return result;
    }
    if (isThenable(result)) {
      return result.then(
        (data) => {
          try {
            return observeResult(data, undefined, observation);
          } catch (fault) {
            call.fault(fault);
            return data;
          }
        },
        (err: unknown) => {
          call.finish({ error: err });
          throw err;
        },
      );
    }
    return observeResult(result, undefined, observation);
  } catch (fault) {
    call.fault(fault);
    return result;
  }
}
