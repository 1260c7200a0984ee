import { BUILT_IN_PATCHES, BUILT_IN_PATCH_NAMES } from '../../patches/index.js';
import type { CallSink } from '../../patches/calls/call.js';
import { interceptCall } from '../../patches/calls/intercept.js';
import { objectAt, type HookTarget, type ProviderPatch } from '../../patches/provider.js';
import { interceptMethodRequest, interceptRawRequest, sendableOptionsFor } from '../../patches/calls/generic-request.js';
import { encodeWithAdditions } from '../../patches/requests/body-additions.js';
import { guardPublicMethods } from '../../patches/calls/outer-call.js';
import { unwrapMethod, wrapMethod, type Intercept, type WrappedMethod } from '../../patches/calls/wrap-method.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, describeValue } from '../errors.js';
import type { AgentLog } from '../log.js';
import { captureRequiredModules, importFromAppRoot, installRequireHook } from './module-hooks.js';
import { onModuleLoaded, sdkModules, type LoadedSdkModule } from './sdk-modules.js';

/** Package, version, build and place of one loaded SDK copy, for debug output. */
function describeCopy(loaded: LoadedSdkModule): string {
  let version = 'unknown version';
  try {
    if (loaded.packageDir !== undefined) version = (JSON.parse(readFileSync(join(loaded.packageDir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // Left unknown.
  }
  return `${loaded.moduleName} ${version} (${loaded.format === 'esm' ? 'ESM' : 'CJS'} build) in ${loaded.packageDir ?? 'an unknown directory'}`;
}

/**
 * Installs and removes a Meter's wrappers: on every build and copy of the enabled provider SDKs as they are found
 * (now and as they load), or on exactly the classes behind one client.
 */
export class Patcher {
  private readonly wrapped = new Map<string, WrappedMethod[]>();
  /** Undoes the accessors that guard per-instance methods (patches/calls/outer-call.ts), per provider. */
  private readonly guards = new Map<string, (() => void)[]>();
  private readonly enabled = new Set<string>();
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly sink: CallSink,
    private readonly allowed: readonly string[],
    /** Background faults (a failed best-effort import): counted and logged, never thrown. */
    private readonly noteFault: (err: unknown) => void,
    private readonly log: AgentLog,
  ) {}

  patch(name: string): void {
    const provider = this.provider(name);
    this.enabled.add(provider.name);
    sdkModules.patchRequested = true;
    installRequireHook();
    captureRequiredModules();
    this.stopListening ??= onModuleLoaded((loaded) => this.patchLoadedModule(loaded));
    for (const loaded of sdkModules.modules) this.patchLoadedModule(loaded);
    importFromAppRoot().then(
      (imported) => {
        if (imported.length === 0) return;
        this.log.warnOnce(
          'esm-without-import',
          `this ES module app was started without --import llm-meter/register: the agent patched the builds of ${imported.join(', ')} it could import from the app's root; a copy the app imports any other way is not metered (start node with --import llm-meter/register, or use meter.instrument(client))`,
        );
      },
      (err: unknown) => this.noteFault(err),
    );
  }

  unpatch(name: string): void {
    const provider = this.provider(name);
    this.enabled.delete(provider.name);
    for (const method of this.wrapped.get(provider.name) ?? []) unwrapMethod(method);
    this.wrapped.delete(provider.name);
    for (const undo of this.guards.get(provider.name) ?? []) undo();
    this.guards.delete(provider.name);
  }

  unpatchAll(): void {
    for (const name of [...this.enabled]) this.unpatch(name);
    this.stopListening?.();
    this.stopListening = undefined;
  }

  /** The classes behind one client: its prototype, and each resource's. Returns the client and its resources. */
  instrument(client: unknown): object[] {
    // The last patch that takes the client: an SDK whose clients are OpenAI-shaped (Groq's) comes after openai's.
    const provider = BUILT_IN_PATCHES.findLast((p) => p.isClient(client));
    if (provider === undefined) {
      throw new ConfigError(`instrument: not a client of a supported SDK (${BUILT_IN_PATCH_NAMES.join(', ')}), got ${describeValue(client)}`);
    }
    this.enabled.add(provider.name);
    sdkModules.patchRequested = true;
    this.wrapRequestMethod(provider, Object.getPrototypeOf(client) as object);
    const objects = [client as object];
    for (const target of provider.targets) {
      const resource = objectAt(client, target.clientPath);
      if (resource === null || typeof resource !== 'object') continue;
      this.wrapTarget(provider, target, Object.getPrototypeOf(resource) as object);
      objects.push(resource);
    }
    // The client's resources already hold their per-instance methods: guarded where they are, and on the prototype
    // for resources made later.
    for (const { fromClient, names } of provider.guardedMethods ?? []) {
      const resource = fromClient(client);
      if (resource === null || typeof resource !== 'object') continue;
      this.guard(provider, resource, names);
      this.guard(provider, Object.getPrototypeOf(resource) as object, names);
    }
    return objects;
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
      if (this.log.debugEnabled) this.log.debugOnce(`patched:${loaded.packageDir}:${loaded.format}`, `patching ${describeCopy(loaded)}`);
      if (typeof root === 'function') this.wrapRequestMethod(provider, root.prototype as object);
      for (const target of provider.targets) {
        // A class path may lead to several classes (an AI SDK package's language models): each is patched.
        const found = objectAt(root, target.classPath);
        for (const resourceClass of Array.isArray(found) ? found : [found]) {
          if (typeof resourceClass === 'function') this.wrapTarget(provider, target, resourceClass.prototype as object);
        }
      }
      for (const { classPath, names } of provider.guardedMethods ?? []) {
        const resourceClass = objectAt(root, classPath);
        if (typeof resourceClass === 'function') this.guard(provider, resourceClass.prototype as object, names);
      }
    }
  }

  private guard(provider: ProviderPatch, owner: object, names: readonly string[]): void {
    const undos = this.guards.get(provider.name) ?? [];
    undos.push(guardPublicMethods(owner, names));
    this.guards.set(provider.name, undos);
  }

  private wrapTarget(provider: ProviderPatch, target: HookTarget, prototype: object): void {
    this.wrap(provider, prototype, target.method, (sink, original, thisArg, args) => interceptCall(provider, target, sink, original, thisArg, args));
  }

  /**
   * The client's request methods: where a hooked call's request waits for an asynchronous spend check (see
   * patches/requests/request-gate.ts), and where a request sent any other way is metered (see
   * patches/calls/generic-request.ts).
   */
  private wrapRequestMethod(provider: ProviderPatch, prototype: object): void {
    const { requestMethod, bodyEncoder, rawRequestMethod } = provider;
    // Decided once per client class: a build with no body encoder to hook (openai 4) gets the fields where it sends.
    const sendable = sendableOptionsFor(bodyEncoder === undefined || typeof (prototype as Record<string, unknown>)[bodyEncoder] === 'function');
    if (requestMethod !== undefined) {
      this.wrap(provider, prototype, requestMethod, (sink, original, thisArg, args) => interceptMethodRequest(provider, sendable, sink, original, thisArg, args));
    }
    if (bodyEncoder !== undefined) this.wrap(provider, prototype, bodyEncoder, (_sink, original, thisArg, args) => encodeWithAdditions(original, thisArg, args));
    if (rawRequestMethod !== undefined) {
      this.wrap(provider, prototype, rawRequestMethod, (sink, original, thisArg, args) => interceptRawRequest(provider, sendable, sink, original, thisArg, args));
    }
  }

  private wrap(provider: ProviderPatch, owner: object, method: string, intercept: Intercept): void {
    const outcome = wrapMethod(owner, method, this.sink, intercept);
    if ('by' in outcome && outcome.by !== this.sink) {
      this.log.warnOnce(
        'patched-by-another-meter',
        `${provider.name} is metered by another Meter already (with LLM_METER_* variables set, the default one: getMeter()); its calls go to that Meter, not to this one`,
      );
    }
    if (!('wrapped' in outcome)) return;
    const list = this.wrapped.get(provider.name) ?? [];
    if (!list.includes(outcome.wrapped)) list.push(outcome.wrapped);
    this.wrapped.set(provider.name, list);
  }
}
