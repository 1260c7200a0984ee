// Usage: node --import register.mjs entry-points.mjs <packageDir> <import|require> <provider> <baseURL> [first-subpath]
// Loads the public entry points of one installed SDK copy (all of them, or only `first-subpath` before the agent is set
// up), and calls once through every client class they export, for a tenant whose limit is $0. Prints one JSON line.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { publicEntryPoints } from '../fixtures/sdk-entry-points.mjs';

const [packageDir, format, providerName, baseURL, firstSubpath] = process.argv.slice(2);
const agentRequire = createRequire(import.meta.url);
const { Meter } = agentRequire('../../dist/src/index.js');
const { BUILT_IN_PATCHES } = agentRequire('../../dist/patches/index.js');
const provider = BUILT_IN_PATCHES.find((p) => p.name === providerName);
const requireFromPackage = createRequire(`${packageDir}/package.json`);

// Built when the first client is constructed (after the SDK under test is loaded): Bedrock's options hold a request
// handler from @smithy/node-http-handler, loaded from the app root, so it is not among the modules loaded first.
const CLIENT_OPTIONS = {
  openai: () => ({ apiKey: 'k', baseURL, apiVersion: '2024-10-21', maxRetries: 0 }),
  anthropic: () => ({ apiKey: 'k', baseURL, maxRetries: 0 }),
  google: () => ({ apiKey: 'k', httpOptions: { baseUrl: baseURL } }),
  groq: () => ({ apiKey: 'k', baseURL, maxRetries: 0 }),
  mistral: () => ({ apiKey: 'k', serverURL: baseURL }),
  bedrock: () => ({
    region: 'us-east-1',
    endpoint: baseURL,
    credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' },
    requestHandler: new (agentRequire('@smithy/node-http-handler').NodeHttpHandler)(),
    maxAttempts: 1,
  }),
};
const chat = { messages: [{ role: 'user', content: 'hi' }] };
/** One call through `client`, whose class `moduleExports` (one entry point's exports) exported. */
const CALL = {
  openai: (c) => c.chat.completions.create({ model: 'gpt-4o-mini', ...chat }),
  anthropic: (c) => c.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 10, ...chat }),
  google: (c) => c.models.generateContent({ model: 'gemini-2.0-flash', contents: 'hi' }),
  groq: (c) => c.chat.completions.create({ model: 'llama-3.1-8b-instant', ...chat }),
  mistral: (c) => c.chat.complete({ model: 'mistral-small-latest', ...chat }),
  bedrock: (c, moduleExports) =>
    c.send(new moduleExports.ConverseCommand({ modelId: 'anthropic.claude-3-haiku-20240307-v1:0', messages: [{ role: 'user', content: [{ text: 'hi' }] }] })),
};

async function load(file) {
  return format === 'import' ? import(pathToFileURL(file).href) : requireFromPackage(file);
}

const entries = publicEntryPoints(packageDir, format).filter(([subpath]) => firstSubpath === undefined || subpath === firstSubpath);
const loaded = [];
let meter;
const events = [];
const setUp = async () => {
  meter = new Meter({ onEvent: (e) => events.push(e) });
  meter.patchAll();
  await meter.setLimit('broke', { limitUsd: 0, frequency: 'per_day' });
};
if (firstSubpath === undefined) await setUp();
for (const [subpath, file] of entries) {
  try {
    loaded.push([subpath, await load(file)]);
  } catch {
    // Not loadable in this format on this Node (an ESM-only file under require on Node 20, a browser build).
  }
}
if (meter === undefined) await setUp();

const WEB_PLATFORM_CLASSES = new Set(['FormData', 'File', 'Blob', 'Headers', 'Request', 'Response', 'ReadableStream']);
const results = [];
const classes = new Map();
for (const [subpath, moduleExports] of loaded) {
  for (const [name, value] of Object.entries(moduleExports)) {
    // Only classes: constructing an exported helper function can start work of its own.
    if (typeof value !== 'function' || !Function.prototype.toString.call(value).startsWith('class')) continue;
    // Web platform classes openai 4's shims re-export (formdata-node's FormData warns when given an options object).
    if (WEB_PLATFORM_CLASSES.has(name)) continue;
    const known = classes.get(value);
    if (known !== undefined) {
      known?.subpaths.push(subpath);
      continue;
    }
    classes.set(value, null);
    let client;
    try {
      client = new value(CLIENT_OPTIONS[providerName]());
    } catch {
      continue;
    }
    if (!provider.isClient(client)) continue;
    let outcome;
    try {
      await meter.forTenant('broke', () => CALL[providerName](client, moduleExports));
      outcome = 'sent';
    } catch (err) {
      outcome = err?.name === 'LimitExceededError' ? 'refused' : `error ${err?.name}`;
    }
    const result = { name, subpaths: [subpath], outcome };
    classes.set(value, result);
    results.push(result);
  }
}
console.log(JSON.stringify({ loaded: loaded.length, results, events: events.length }));
await meter.shutdown();
