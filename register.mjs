// `node --import llm-meter/register app.mjs` (or in NODE_OPTIONS): the same as `--require`; see register.cjs.
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./register.cjs');
