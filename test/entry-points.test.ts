import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { NODE_MATRIX, repoRoot, runNode, sdkRoot } from './helpers.js';

// Whichever public entry point of a supported SDK the app loads, its client classes are metered and limited. The
// entry points come from each installed version's own `exports` map, so a subpath a future version adds is tried too.
const fake = await startFakeProviders();
afterAll(() => fake.close());

/** The package `name` in the app root installed on demand for an SDK major that declares Node >= 22. */
const onDemand = (root: string, name: string) => join(relative(repoRoot, sdkRoot(root)), 'node_modules', name);

const COPIES = [
  { sdk: 'openai 7', provider: 'openai', dir: onDemand('openai-7', 'openai') },
  { sdk: 'openai 6', provider: 'openai', dir: 'node_modules/openai' },
  { sdk: 'openai 5', provider: 'openai', dir: 'test/sdk-versions/openai-5/node_modules/openai' },
  // openai 4 defines its client classes in index.* (no client or azure subpaths); its `./*` exports reach every file.
  {
    sdk: 'openai 4',
    provider: 'openai',
    dir: 'test/sdk-versions/openai-4/node_modules/openai',
    mustFind: { import: ['.', './index', './index.js', './index.mjs'], require: ['.', './index', './index.js', './index.mjs'] },
  },
  { sdk: 'anthropic 1', provider: 'anthropic', dir: 'node_modules/@anthropic-ai/sdk' },
  { sdk: 'anthropic 0', provider: 'anthropic', dir: 'test/sdk-versions/anthropic-0/node_modules/@anthropic-ai/sdk' },
  { sdk: 'genai 3', provider: 'google', dir: onDemand('genai-3', '@google/genai') },
  { sdk: 'genai 2', provider: 'google', dir: 'node_modules/@google/genai' },
  { sdk: 'genai 1', provider: 'google', dir: 'test/sdk-versions/genai-1/node_modules/@google/genai' },
] as { sdk: string; provider: string; dir: string; mustFind?: Record<'import' | 'require', string[]> }[];

/** The entry points that must be among those found to export a client class (so the test cannot pass on finding none). */
const MUST_FIND: Record<string, Record<'import' | 'require', string[]>> = {
  openai: { import: ['.', './client', './client.js', './azure'], require: ['.', './client', './client.mjs', './azure'] },
  anthropic: { import: ['.', './client', './client.js'], require: ['.', './client', './client.mjs'] },
  google: { import: ['.', './web'], require: ['.'] },
  // groq-sdk (Stainless, like openai): each build reachable by either format, the other through its explicit suffix.
  groq: {
    import: ['.', './index', './index.js', './index.mjs', './client', './client.js', './client.mjs'],
    require: ['.', './index', './index.js', './index.mjs', './client', './client.js', './client.mjs'],
  },
  // @mistralai/mistralai is ESM only: its `./*` exports reach the module that defines the client, and its index.
  mistral: {
    import: ['.', './index', './index.js', './sdk/index', './sdk/index.js', './sdk/sdk', './sdk/sdk.js'],
    require: ['.', './index', './index.js', './sdk/index', './sdk/index.js', './sdk/sdk', './sdk/sdk.js'],
  },
  // @aws-sdk/client-bedrock-runtime has no exports map: its main (one CJS bundle) is its only entry point.
  bedrock: { import: ['.'], require: ['.'] },
};

/**
 * Whether `require()` of an ES module works unflagged on Node `version` (20.19+, 22.12+, 23+). Without it an ESM-only
 * entry point cannot be required at all, so there is no call to meter: those cases are skipped, saying so.
 */
function hasRequireEsm(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major >= 23 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);
}

interface EntryPointRun {
  loaded: number;
  results: { name: string; subpaths: string[]; outcome: string }[];
  events: number;
}

async function callThroughEntryPoints(
  dir: string,
  format: 'import' | 'require',
  provider: string,
  options: { first?: string; loader?: boolean; execPath?: string } = {},
): Promise<EntryPointRun> {
  // Refused calls send nothing, so groq, mistral and bedrock need no route of their own: any request is recorded.
  const baseURL = {
    openai: fake.openaiBaseURL,
    anthropic: fake.anthropicBaseURL,
    google: fake.geminiBaseUrl,
    groq: fake.url,
    mistral: fake.url,
    bedrock: fake.url,
  }[provider]!;
  const args = [join(repoRoot, 'test/apps/entry-points.mjs'), join(repoRoot, dir), format, provider, baseURL];
  if (options.first !== undefined) args.push(options.first);
  const run = await runNode(options.loader === false ? args : ['--import', join(repoRoot, 'register.mjs'), ...args], {
    timeoutMs: 120_000,
    // The AWS SDK's notice on stderr that its releases after January 2027 will need Node 22 (it prints on Node 20).
    ...(provider === 'bedrock' ? { env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } } : {}),
    ...(options.execPath === undefined ? {} : { execPath: options.execPath }),
  });
  expect(run.stderr).not.toMatch(/Error|Warning/);
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as EntryPointRun;
}

describe.each(COPIES)('$sdk: every public entry point', ({ sdk, provider, dir, mustFind }) => {
  it.each(['import', 'require'] as const)('all loaded by %s under --import: each client class they export is limited and metered', async (format) => {
    const before = fake.requests.length;
    const run = await callThroughEntryPoints(dir, format, provider);
    const found = run.results.flatMap((r) => r.subpaths);
    for (const subpath of (mustFind ?? MUST_FIND[provider]!)[format]) {
      if (sdk === 'genai 2' && subpath === './web') continue;
      expect(found).toContain(subpath);
    }
    expect(run.results.filter((r) => r.outcome !== 'refused')).toEqual([]);
    expect(run.events).toBe(run.results.length);
    expect(fake.requests.length).toBe(before);
  }, 180_000);
});

/** SDKs whose every entry point is tried on each Node of the matrix, by import and by require. */
const MATRIX_COPIES = [
  { sdk: 'groq-sdk 1', provider: 'groq', dir: 'node_modules/groq-sdk', esmOnly: false },
  { sdk: '@mistralai/mistralai 2', provider: 'mistral', dir: 'node_modules/@mistralai/mistralai', esmOnly: true },
  { sdk: '@aws-sdk/client-bedrock-runtime 3', provider: 'bedrock', dir: 'node_modules/@aws-sdk/client-bedrock-runtime', esmOnly: false },
] as const;

describe.each(NODE_MATRIX)('$name: every public entry point', ({ binary, version }) => {
  let execPath = '';
  beforeAll(() => {
    execPath = binary();
  }, 180_000);

  for (const { sdk, provider, dir, esmOnly } of MATRIX_COPIES) {
    for (const format of ['import', 'require'] as const) {
      const name = `${sdk}: all loaded by ${format} under --import: each client class they export is limited and metered`;
      if (esmOnly && format === 'require' && !hasRequireEsm(version)) {
        it.skip(`${name} (skipped: ${sdk} is ESM only and Node ${version} has no require(esm))`, () => {});
        continue;
      }
      it(name, async () => {
        const before = fake.requests.length;
        const run = await callThroughEntryPoints(dir, format, provider, { execPath });
        const found = run.results.flatMap((r) => r.subpaths);
        // Without require(esm) an ES module build cannot be required: there is nothing to meter.
        const reachable = MUST_FIND[provider]![format].filter((subpath) => format === 'import' || hasRequireEsm(version) || !subpath.endsWith('.mjs'));
        for (const subpath of reachable) expect(found).toContain(subpath);
        expect(run.results.filter((r) => r.outcome !== 'refused')).toEqual([]);
        expect(run.events).toBe(run.results.length);
        expect(fake.requests.length).toBe(before);
      }, 180_000);
    }
  }
});

const LOADED_FIRST = [
  { entry: 'openai/client', provider: 'openai', dir: 'node_modules/openai', subpath: './client', format: 'import' },
  { entry: 'openai/client', provider: 'openai', dir: 'node_modules/openai', subpath: './client', format: 'require' },
  { entry: 'openai/azure', provider: 'openai', dir: 'node_modules/openai', subpath: './azure', format: 'import' },
  { entry: '@anthropic-ai/sdk/client', provider: 'anthropic', dir: 'node_modules/@anthropic-ai/sdk', subpath: './client', format: 'import' },
  { entry: '@anthropic-ai/sdk/client', provider: 'anthropic', dir: 'node_modules/@anthropic-ai/sdk', subpath: './client', format: 'require' },
  { entry: '@google/genai/node', provider: 'google', dir: 'node_modules/@google/genai', subpath: './node', format: 'import' },
  { entry: '@google/genai/web', provider: 'google', dir: 'node_modules/@google/genai', subpath: './web', format: 'import' },
  { entry: 'openai (openai 4)', provider: 'openai', dir: 'test/sdk-versions/openai-4/node_modules/openai', subpath: '.', format: 'import' },
  { entry: 'openai (openai 4)', provider: 'openai', dir: 'test/sdk-versions/openai-4/node_modules/openai', subpath: '.', format: 'require' },
  { entry: '@google/genai (genai 1)', provider: 'google', dir: 'test/sdk-versions/genai-1/node_modules/@google/genai', subpath: '.', format: 'import' },
  { entry: '@google/genai (genai 1)', provider: 'google', dir: 'test/sdk-versions/genai-1/node_modules/@google/genai', subpath: '.', format: 'require' },
  { entry: 'groq-sdk', provider: 'groq', dir: 'node_modules/groq-sdk', subpath: '.', format: 'import' },
  { entry: 'groq-sdk', provider: 'groq', dir: 'node_modules/groq-sdk', subpath: '.', format: 'require' },
  { entry: 'groq-sdk/client', provider: 'groq', dir: 'node_modules/groq-sdk', subpath: './client', format: 'import' },
  { entry: 'groq-sdk/client', provider: 'groq', dir: 'node_modules/groq-sdk', subpath: './client', format: 'require' },
  // Each build through the other format: the CJS one imported, the ESM one required (require(esm)).
  { entry: 'groq-sdk/client.js', provider: 'groq', dir: 'node_modules/groq-sdk', subpath: './client.js', format: 'import' },
  { entry: 'groq-sdk/client.mjs', provider: 'groq', dir: 'node_modules/groq-sdk', subpath: './client.mjs', format: 'require', esm: true },
  { entry: '@mistralai/mistralai', provider: 'mistral', dir: 'node_modules/@mistralai/mistralai', subpath: '.', format: 'import' },
  { entry: '@mistralai/mistralai', provider: 'mistral', dir: 'node_modules/@mistralai/mistralai', subpath: '.', format: 'require', esm: true },
  { entry: '@mistralai/mistralai/sdk/sdk', provider: 'mistral', dir: 'node_modules/@mistralai/mistralai', subpath: './sdk/sdk', format: 'import' },
  { entry: '@mistralai/mistralai/sdk/sdk', provider: 'mistral', dir: 'node_modules/@mistralai/mistralai', subpath: './sdk/sdk', format: 'require', esm: true },
  { entry: '@aws-sdk/client-bedrock-runtime', provider: 'bedrock', dir: 'node_modules/@aws-sdk/client-bedrock-runtime', subpath: '.', format: 'import' },
  { entry: '@aws-sdk/client-bedrock-runtime', provider: 'bedrock', dir: 'node_modules/@aws-sdk/client-bedrock-runtime', subpath: '.', format: 'require' },
] as { entry: string; provider: string; dir: string; subpath: string; format: 'import' | 'require'; esm?: boolean }[];


describe.each(NODE_MATRIX)('$name: an entry point loaded alone, before the agent is set up', ({ binary, version }) => {
  let execPath = '';
  beforeAll(() => {
    execPath = binary();
  }, 180_000);

  // An ES module required needs require(esm): on a Node without it there is nothing loaded to meter.
  const runnable = LOADED_FIRST.filter((c) => c.esm !== true || c.format !== 'require' || hasRequireEsm(version));
  const unrunnable = LOADED_FIRST.filter((c) => !runnable.includes(c));
  if (unrunnable.length > 0) it.skip.each(unrunnable)(`$entry by $format (skipped: an ES module, and Node ${version} has no require(esm))`, () => {});

  it.each(runnable)('$entry by $format, patchAll() after it loaded: refused for a tenant at its limit', async ({ provider, dir, subpath, format }) => {
    const before = fake.requests.length;
    const run = await callThroughEntryPoints(dir, format, provider, { first: subpath, execPath });
    // A class the entry point exports under two names (openai 4's `OpenAI` and `default`) is one client class.
    expect(run.results.map((r) => [[...new Set(r.subpaths)], r.outcome])).toEqual(run.results.map(() => [[subpath], 'refused']));
    expect(run.results.length).toBeGreaterThan(0);
    expect(fake.requests.length).toBe(before);
  }, 120_000);

  it.each(runnable.filter((c) => c.format === 'require'))('$entry by require, without any load hook: found in the require cache', async ({ provider, dir, subpath, format }) => {
    const run = await callThroughEntryPoints(dir, format, provider, { first: subpath, loader: false, execPath });
    expect(run.results.length).toBeGreaterThan(0);
    expect(run.results.filter((r) => r.outcome !== 'refused')).toEqual([]);
  }, 120_000);
});
