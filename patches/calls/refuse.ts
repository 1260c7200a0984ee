import { isApiPromise } from '../results/api-promise.js';
import { objectAt, type ResultStyle } from '../provider.js';

const ignore = (): void => undefined;

/**
 * A refused call fails the way the SDK fails its own calls, without sending anything: for Stainless SDKs a rejected
 * APIPromise of the very build the caller uses (made by the client's own `request()`, which awaits its options before
 * touching the network), so `.withResponse()` and the stream helpers behave as for any API error; otherwise a rejected
 * promise. An unawaited refused call must not crash the process, so the rejection is marked handled; awaiting it still
 * throws.
 */
export function refusedResult(style: ResultStyle, resource: unknown, refusal: Error): unknown {
  const rejected = Promise.reject(refusal);
  rejected.catch(ignore);
  if (style === 'api-promise') {
    const client = objectAt(resource, ['_client']) as { request?: (options: unknown) => unknown } | undefined;
    if (typeof client?.request === 'function') {
      const promise = client.request(rejected);
      if (isApiPromise(promise)) {
        promise.responsePromise.catch(ignore);
        return promise;
      }
    }
  }
  return rejected;
}
