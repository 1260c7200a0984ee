'use strict';
// `node --require llm-meter/register app.cjs` (or in NODE_OPTIONS): the load hooks, and with LLM_METER_* variables
// the default Meter. Synchronous, so that it can be required.
require('./dist/src/zero-code/register.js').register('require');
