// `node --import llm-meter/register app.mjs` (or in NODE_OPTIONS): the load hooks, and with LLM_METER_* variables the
// default Meter; the same as `--require` (register.cjs), with Node's in-thread module hooks where it has them.
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./dist/src/zero-code/register.js').register('import');
