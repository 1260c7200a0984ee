import { BUILT_IN_PATCHES, BUILT_IN_PATCH_NAMES } from '../patches/index.js';
import type { CallSink } from '../patches/call.js';
import { interceptCall } from '../patches/intercept.js';
import { objectAt, type HookTarget, type ProviderPatch } from '../patches/provider.js';
import { gatedOptions } from '../patches/request-gate.js';
import { unwrapMethod, wrapMethod, type WrapOutcome, type WrappedMethod } from '../patches/wrap-method.js';
import { ConfigError, describeValue } from './errors.js';
import { captureRequiredModules, importFromAppRoot, installRequireHook } from './module-hooks.js';
import { onModuleLoaded, sdkModules, type LoadedSdkModule } from './sdk-modules.js';

/**
 * Installs and removes a Meter's wrappers: on every build and copy of the enabled provider SDKs as they are found
 * (now and as they load), or on exactly the classes behind one client.
 */
export class Patcher {
  private readonly wrapped = new Map<string, WrappedMethod[]>();
  private readonly enabled = new Set<string>();
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly sink: CallSink,
    private readonly allowed: readonly string[],
    /** Background faults (a failed best-effort import): counted and logged, never thrown. */
    private readonly noteFault: (err: unknown) => void,
  ) {}

  patch(name: string): void {
    const provider = this.provider(name);
    this.enabled.add(provider.name);
    installRequireHook();
    captureRequiredModules();
    this.stopListening ??= onModuleLoaded((loaded) => this.patchLoadedModule(loaded));
    for (const loaded of sdkModules.modules) this.patchLoadedModule(loaded);
    importFromAppRoot().catch((err: unknown) => this.noteFault(err));
  }

  unpatch(name: string): void {
    const provider = this.provider(name);
    this.enabled.delete(provider.name);
    for (const method of this.wrapped.get(provider.name) ?? []) unwrapMethod(method);
    this.wrapped.delete(provider.name);
  }

  unpatchAll(): void {
    for (const name of [...this.enabled]) this.unpatch(name);
    this.stopListening?.();
    this.stopListening = undefined;
  }

  /** The classes behind one client: its prototype, and each resource's. */
  instrument(client: unknown): void {
    const provider = BUILT_IN_PATCHES.find((p) => p.isClient(client));
    if (provider === undefined) {
      throw new ConfigError(`instrument: not a client of a supported SDK (${BUILT_IN_PATCH_NAMES.join(', ')}), got ${describeValue(client)}`);
    }
    this.enabled.add(provider.name);
    this.wrapRequestMethod(provider, Object.getPrototypeOf(client) as object);
    for (const target of provider.targets) {
      const resource = objectAt(client, target.clientPath);
      if (resource !== null && typeof resource === 'object') this.wrapTarget(provider, target, Object.getPrototypeOf(resource) as object);
    }
  }

  private provider(name: string): ProviderPatch {
    const provider = BUILT_IN_PATCHES.find((p) => p.name === name);
    if (provider === undefined || !this.allowed.includes(name)) {
      throw new ConfigError(`unknown or disabled provider ${describeValue(name)} (enabled: ${this.allowed.join(', ')})`);
    }
    return provider;
  }

  private patchLoadedModule(loaded: LoadedSdkModule): void {
    for (const provider of BUILT_IN_PATCHES) {
      if (!this.enabled.has(provider.name) || provider.packageName !== loaded.moduleName) continue;
      const root = provider.root(loaded.moduleExports);
      if (typeof root === 'function') this.wrapRequestMethod(provider, root.prototype as object);
      for (const target of provider.targets) {
        const resourceClass = objectAt(root, target.classPath);
        if (typeof resourceClass === 'function') this.wrapTarget(provider, target, resourceClass.prototype as object);
      }
    }
  }

  private wrapTarget(provider: ProviderPatch, target: HookTarget, prototype: object): void {
    this.remember(
      provider,
      wrapMethod(prototype, target.method, this.sink, (sink, original, thisArg, args) => interceptCall(provider, target, sink, original, thisArg, args)),
    );
  }

  /** Where a request can wait for an asynchronous spend check (see patches/request-gate.ts). */
  private wrapRequestMethod(provider: ProviderPatch, prototype: object): void {
    if (provider.requestMethod === undefined) return;
    this.remember(
      provider,
      wrapMethod(prototype, provider.requestMethod, this.sink, (_sink, original, thisArg, [method, path, options, ...rest]) =>
        Reflect.apply(original, thisArg, [method, path, gatedOptions(options), ...rest]),
      ),
    );
  }

  private remember(provider: ProviderPatch, outcome: WrapOutcome): void {
    if (!('wrapped' in outcome)) return;
    const list = this.wrapped.get(provider.name) ?? [];
    if (!list.includes(outcome.wrapped)) list.push(outcome.wrapped);
    this.wrapped.set(provider.name, list);
  }
}
