// Load with `node --import llm-meter/register app.mjs` (or `--import ./register.mjs`): installs the load hooks for
// require() and import of the provider SDKs before the app's own imports run. Patching happens in `meter.patchAll()`.
import { createRequire } from 'node:module';

const { installImportHook, installRequireHook, warnIfNeverPatched } = createRequire(import.meta.url)('./dist/src/patching/module-hooks.js');

installRequireHook();
await installImportHook();
warnIfNeverPatched();
