/**
 * The provider SDK modules seen loading in this process, whichever way they were found (require hook, import hook,
 * require.cache scan, import from the app's root). Process-wide, so that the load hooks installed by `register.mjs`
 * and every Meter (and every copy of the agent) see the same set.
 */
export interface LoadedSdkModule {
  /** The package. */
  moduleName: string;
  moduleExports: unknown;
  /** Where this copy of the package is installed. */
  packageDir: string | undefined;
  format: 'cjs' | 'esm';
}

type Listener = (loaded: LoadedSdkModule) => void;

interface SdkModuleRegistry {
  modules: LoadedSdkModule[];
  listeners: Set<Listener>;
  requireHookInstalled: boolean;
  importHookInstalled: boolean;
  /** A Meter was asked to patch (patchAll, patch or instrument). */
  patchRequested: boolean;
}

const REGISTRY_KEY = Symbol.for('llm-meter.sdk-modules');
type GlobalWithRegistry = typeof globalThis & { [REGISTRY_KEY]?: SdkModuleRegistry };

export const sdkModules: SdkModuleRegistry = ((globalThis as GlobalWithRegistry)[REGISTRY_KEY] ??= {
  modules: [],
  listeners: new Set(),
  requireHookInstalled: false,
  importHookInstalled: false,
  patchRequested: false,
});

/** Never throws: it runs inside the app's own require() and import. */
export function recordLoadedModule(loaded: LoadedSdkModule): void {
  const { moduleExports } = loaded;
  if (moduleExports === null || (typeof moduleExports !== 'object' && typeof moduleExports !== 'function')) return;
  if (sdkModules.modules.some((m) => m.moduleExports === moduleExports)) return;
  sdkModules.modules.push(loaded);
  for (const listener of sdkModules.listeners) {
    try {
      listener(loaded);
    } catch {
      // A listener's fault must never break the app's own require or import.
    }
  }
}

export function onModuleLoaded(listener: Listener): () => void {
  sdkModules.listeners.add(listener);
  return () => sdkModules.listeners.delete(listener);
}
