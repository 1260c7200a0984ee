import type { CallSink, MeteredCall } from './call.js';
import { isApiPromise, observeApiPromise } from '../results/api-promise.js';
import { observeResult, type Observation } from '../results/observe.js';
import type { HookTarget, PreparedCall, ProviderPatch } from '../provider.js';
import { bindStreamToCallerContext } from './context.js';
import { withCap, type CapToSend } from '../requests/output-bound.js';
import { refusedResult } from './refuse.js';
import { addingToBody, runBehindGate, type RequestGate } from '../requests/request-gate.js';
import { sendingAsAgent } from './agent-sending.js';
import { refusalIsHandled } from './outer-call.js';

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
  if (target.select !== undefined) {
    const selected = target.select(args);
    if (selected === undefined) return Reflect.apply(original, thisArg, args);
    target = selected;
  }
  if (target.callbackLast === true && typeof args[args.length - 1] === 'function') return withCallback(provider, target, sink, original, thisArg, args);
  return meterCall(provider, target, sink, original, thisArg, args);
}

/** A call of one target, in its promise (or API-promise) form. */
function meterCall(provider: ProviderPatch, target: HookTarget, sink: CallSink, original: Function, thisArg: unknown, args: unknown[]): unknown {
  if (target.bindsCallerContext === true) return bindStreamToCallerContext(Reflect.apply(original, thisArg, args));
  let call: MeteredCall;
  try {
    call = sink.begin(provider, target, args, thisArg);
  } catch (fault) {
    sink.fault(fault);
    return Reflect.apply(original, thisArg, args);
  }
  // A refused call must never fall through to the SDK, whatever happens below.
  if (call.refusal !== undefined) {
    call.finish({ error: call.refusal });
    if (provider.style === 'promise') refusalIsHandled();
    const refusal = call.refusal;
    return sendingAsAgent(() => refusedResult(provider.style, thisArg, refusal));
  }
  let prepared: PreparedCall | undefined;
  try {
    prepared = target.prepare?.(args, thisArg);
  } catch (fault) {
    call.fault(fault);
  }
  const hideInjected = prepared?.hideInjected === true;
  const run = (sentArgs: unknown[]): unknown => runAndObserve(provider, target, call, original, thisArg, sentArgs, args, hideInjected);

  const admission = call.admission;
  if (provider.style === 'promise') {
    const runCapped = (cap: CapToSend | undefined): unknown => run(cap === undefined ? args : [withCap(args[0], cap), ...args.slice(1)]);
    if (admission === undefined) return runCapped(call.sendOutputCap);
    return admission.then(runCapped, (refusal: unknown) => {
      call.finish({ error: refusal });
      refusalIsHandled();
      throw refusal;
    });
  }
  // A Stainless SDK encodes the caller's own params object: what the agent adds (the cap, a stream option) travels with
  // the request's options to where the body is encoded. An asynchronous admission holds the request until it answers.
  const additions = prepared?.bodyAdditions;
  let gate: RequestGate | undefined;
  if (admission !== undefined) gate = admission.then((cap) => addingToBody(additions, cap));
  else if (additions !== undefined || call.sendOutputCap !== undefined) gate = addingToBody(additions, call.sendOutputCap);
  if (gate === undefined) return run(args);
  const { result, gated } = runBehindGate(gate, () => run(args));
  if (!gated) call.fault(new Error(`${provider.name} ${target.endpoint}: no request gate; the spend check could not hold this request`));
  return result;
}

const ignore = (): void => undefined;

/**
 * The callback form (`send(command, options, cb)`): run as the promise form, metered, and its outcome handed to the
 * callback the way the SDK does it (a refusal too), so a callback caller is metered and refused like any other.
 */
function withCallback(provider: ProviderPatch, target: HookTarget, sink: CallSink, original: Function, thisArg: unknown, args: unknown[]): undefined {
  const callback = args[args.length - 1] as (err: unknown, data?: unknown) => void;
  const result = meterCall(provider, target, sink, original, thisArg, args.slice(0, -1));
  Promise.resolve(result)
    .then((data) => callback(null, data), (err: unknown) => callback(err))
    .catch(ignore);
  return undefined;
}

function requestIdOf(target: HookTarget, resultOrError: unknown): string | undefined {
  try {
    return target.requestIdOf?.(resultOrError);
  } catch {
    return undefined;
  }
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
    result = sendingAsAgent(() => Reflect.apply(original, thisArg, callArgs));
  } catch (err) {
    call.abandon();
    throw err;
  }

  const observation: Observation = { call, target, args, hideInjected, requestIdHeader: provider.requestIdHeader, rawTaken: false, resource: thisArg };
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
          call.finish({ error: err, requestId: requestIdOf(target, err) });
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
