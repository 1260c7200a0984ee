// The app whose startup the bench times: nothing but importing the SDK, as an app's entry point would.
import OpenAI from 'openai';

if (typeof OpenAI !== 'function') throw new Error('openai did not load');
