// The startup baseline: `--import` this to pay for the loader thread alone, without the agent.
import { register } from 'node:module';

register('./noop-hooks.mjs', import.meta.url);
