import { existsSync, readFileSync } from 'node:fs';
import { createRequire, register as registerLoader } from 'node:module';
import { dirname, extname, join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Hook as RequireHook } from 'require-in-the-middle';
import { BUILT_IN_PATCHES, HOOKED_PACKAGE_NAMES } from '../../patches/index.js';
import type { ProviderPatch } from '../../patches/provider.js';
import { onModuleLoaded, recordLoadedModule, sdkModules } from './sdk-modules.js';

const agentRequire = createRequire(__filename);

/** The provider whose class files include `relativePath` (inside package `packageName`), if any. */
function classFileProvider(packageName: string, relativePath: string): ProviderPatch | undefined {
  const provider = BUILT_IN_PATCHES.find((p) => p.packageName === packageName);
  return provider !== undefined && provider.classFiles.test(relativePath.split(sep).join('/')) ? provider : undefined;
}

/**
 * require() of a provider SDK, now and later: records the exports of each file that defines the SDK's classes, whichever
 * of the package's entry points (`openai`, `openai/client`, ...) the app requires.
 */
export function installRequireHook(): void {
  if (sdkModules.requireHookInstalled) return;
  sdkModules.requireHookInstalled = true;
  new RequireHook([...HOOKED_PACKAGE_NAMES], { internals: true }, (moduleExports, name, basedir) => {
    const packageName = HOOKED_PACKAGE_NAMES.find((p) => name === p || name.startsWith(p + sep));
    if (packageName === undefined) return moduleExports;
    if (name === packageName || classFileProvider(packageName, name.slice(packageName.length + 1)) !== undefined) {
      recordLoadedModule({ moduleName: packageName, moduleExports, packageDir: basedir, format: 'cjs' });
    }
    return moduleExports;
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The file URLs the import hook wraps: the class files of every installed copy of each provider SDK, nothing else. */
function classFileUrlPatterns(): RegExp[] {
  return BUILT_IN_PATCHES.map(
    (p) => new RegExp(`/node_modules/${escapeRegExp(p.packageName)}/(?:${p.classFiles.source.replace(/^\^/, '')})`),
  );
}

/**
 * import of a provider SDK. Must run before the app's imports (`--import` or `--require llm-meter/register`). Uses
 * Node's in-thread sync hooks for an `--import` preload where the running Node has them, the loader thread of
 * `module.register` otherwise; either way only the files that define the provider SDKs' classes are wrapped. Synchronous: the file
 * patterns go to the loader with `register` itself, and the Hook names no module, so no message is left to acknowledge.
 */
export function installImportHook(preload: 'import' | 'require'): void {
  if (sdkModules.importHookInstalled) return;
  sdkModules.importHookInstalled = true;
  const iitm = agentRequire('import-in-the-middle') as typeof import('import-in-the-middle');
  const include = classFileUrlPatterns();
  // Sync hooks registered by a `--require` preload break every builtin a `node -e` script then requires (Node 22, 24).
  if (preload === 'import' && syncHooksSupported()) {
    (agentRequire('import-in-the-middle/register-hooks.mjs') as { register(options: { include: RegExp[] }): void }).register({ include });
  } else {
    const channel = iitm.createAddHookMessageChannel();
    (channel.registerOptions.data as { include: unknown[] }).include.push(...include);
    // hook.mjs must come from the same copy of import-in-the-middle as Hook, or the hook silently never fires.
    registerLoader(pathToFileURL(agentRequire.resolve('import-in-the-middle/hook.mjs')).href, pathToFileURL(__filename).href, channel.registerOptions);
  }
  // No module list: the loader wraps only the class files above, and a list would add each package's main to it.
  new iitm.Hook((moduleExports, name, baseDir) => {
    if (HOOKED_PACKAGE_NAMES.includes(name)) recordLoadedModule({ moduleName: name, moduleExports, packageDir: baseDir === undefined ? undefined : String(baseDir), format: 'esm' });
  });
}

/** A Node whose sync hooks the loader can use (it can also require() an ES module: those that cannot have neither). */
function syncHooksSupported(): boolean {
  try {
    return (agentRequire('import-in-the-middle/supports-sync-hooks.mjs') as { supportsSyncHooks(): boolean }).supportsSyncHooks();
  } catch {
    return false;
  }
}

function packageDirOf(file: string, moduleName: string): string | undefined {
  const marker = `${sep}node_modules${sep}${moduleName.split('/').join(sep)}${sep}`;
  const at = file.lastIndexOf(marker);
  return at === -1 ? undefined : file.slice(0, at + marker.length - 1);
}

/** Provider SDKs the app required before the agent was set up: the class files of each copy found in require.cache. */
export function captureRequiredModules(): void {
  for (const [file, cached] of Object.entries(agentRequire.cache)) {
    if (cached?.loaded !== true) continue;
    for (const moduleName of HOOKED_PACKAGE_NAMES) {
      const packageDir = packageDirOf(file, moduleName);
      if (packageDir === undefined || classFileProvider(moduleName, relative(packageDir, file)) === undefined) continue;
      recordLoadedModule({ moduleName, moduleExports: cached.exports, packageDir, format: 'cjs' });
    }
  }
}

/** Node's resolution of an `exports` target under the conditions an ESM import uses. */
function esmTarget(exportsField: unknown): string | undefined {
  if (typeof exportsField === 'string') return exportsField;
  if (exportsField === null || typeof exportsField !== 'object' || Array.isArray(exportsField)) return undefined;
  const conditions = exportsField as Record<string, unknown>;
  if ('.' in conditions) return esmTarget(conditions['.']);
  for (const [condition, target] of Object.entries(conditions)) {
    if (condition !== 'node' && condition !== 'import' && condition !== 'default') continue;
    const resolved = esmTarget(target);
    if (resolved !== undefined) return resolved;
  }
  return undefined;
}

function appRoot(): string {
  const main = process.argv[1];
  return main !== undefined && existsSync(main) ? dirname(main) : process.cwd();
}

function appIsEsm(): boolean {
  const main = process.argv[1];
  if (main === undefined) return false;
  const ext = extname(main);
  if (ext === '.mjs' || ext === '.mts') return true;
  if (ext === '.cjs' || ext === '.cts') return false;
  for (let dir = dirname(main); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) return (JSON.parse(readFileSync(manifest, 'utf8')) as { type?: string }).type === 'module';
    if (dirname(dir) === dir) return false;
  }
}

/**
 * Best effort for an ESM app that did not load the agent with --import: import each provider SDK's ESM build as the
 * app would resolve it. Node caches modules by URL, so this yields the app's own classes when the app imported the same
 * copy. `instrument(client)` is the dependable way for such apps.
 */
export async function importFromAppRoot(): Promise<string[]> {
  const imported: string[] = [];
  if (sdkModules.importHookInstalled || !appIsEsm()) return imported;
  const appRequire = createRequire(join(appRoot(), 'noop.js'));
  for (const moduleName of HOOKED_PACKAGE_NAMES) {
    let dir: string | undefined;
    try {
      dir = packageDirOf(appRequire.resolve(moduleName), moduleName);
    } catch {
      continue;
    }
    if (dir === undefined) continue;
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports?: unknown; main?: string };
    // Without an exports map Node imports `main` (@aws-sdk/client-bedrock-runtime's CJS bundle), never `module`.
    const target = esmTarget(manifest.exports) ?? manifest.main;
    if (target === undefined) continue;
    recordLoadedModule({ moduleName, moduleExports: await import(pathToFileURL(join(dir, target)).href), packageDir: dir, format: 'esm' });
    imported.push(moduleName);
  }
  return imported;
}

/** How long after a provider SDK loads under the load hooks the agent expects a Meter to have patched it. */
const PATCH_EXPECTED_WITHIN_MS = 5000;

/**
 * For register.mjs: one warning when a provider SDK loaded under the load hooks but no Meter patched anything (the app
 * never called patchAll() or instrument()), by a few seconds after it loaded or at exit, whichever comes first.
 */
export function warnIfNeverPatched(): void {
  let warned = false;
  const check = (): void => {
    if (warned || sdkModules.patchRequested || sdkModules.modules.length === 0) return;
    warned = true;
    const names = [...new Set(sdkModules.modules.map((m) => m.moduleName))].join(', ');
    process.stderr.write(
      `[llm-meter] warning: ${names} loaded under --import llm-meter/register, but no Meter patched it (meter.patchAll() was never called): its calls are not metered\n`,
    );
  };
  const stop = onModuleLoaded(() => {
    stop();
    setTimeout(check, PATCH_EXPECTED_WITHIN_MS).unref();
    process.once('exit', check);
  });
}
