import { isMainThread } from 'node:worker_threads';
import { installImportHook, installRequireHook, warnIfNeverPatched } from '../patching/module-hooks.js';
import { startFromEnvironment } from './default-meter.js';

/**
 * `node --import llm-meter/register` and `node --require llm-meter/register`: the load hooks for require() and import
 * of the provider SDKs, before the app's own code runs; then, with LLM_METER_* variables, the default Meter.
 */
export function register(preload: 'import' | 'require'): void {
  // Preloads run in every thread: in Node 20's loader thread too, where registering the loader again kills the process.
  if (!isMainThread) return;
  installRequireHook();
  installImportHook(preload);
  warnIfNeverPatched();
  startFromEnvironment();
}
