// The GPU device: Dawn instance, adapter, device with the adapter's maximum limits, and what it can do.
// Native code (dawn.node) loads only here, lazily, so importing the engine costs nothing until a device is made.

import type { GpuInfo } from '../../protocol/gpu';
import { paceDawnPolling } from './dawn-polling';

export type Backend = 'vulkan' | 'metal' | 'd3d12' | 'opengles' | 'default';

export type { GpuInfo };

/** Limits left at WebGPU's defaults (which Basin's kernels stay within). */
const DEFAULT_ONLY_LIMITS = new Set(['maxDynamicUniformBuffersPerPipelineLayout', 'maxDynamicStorageBuffersPerPipelineLayout']);

export class NoAdapterError extends Error {
  constructor(detail: string) {
    super(`No WebGPU adapter found${detail ? ` (${detail})` : ''}. ${driverAdvice()}`);
    this.name = 'NoAdapterError';
  }
}

export class DeviceLostError extends Error {
  constructor(reason: string, message: string) {
    super(`The GPU device was lost (${reason || 'unknown'}): ${message || 'no message'}. Restart the job; if it repeats, the driver or the GPU is failing.`);
    this.name = 'DeviceLostError';
  }
}

/** Which driver to install so that WebGPU finds an adapter on this OS. */
export function driverAdvice(platform: NodeJS.Platform = process.platform): string {
  switch (platform) {
    case 'linux':
      return 'Install a Vulkan driver: your GPU vendor\'s (NVIDIA driver, or Mesa radv/anv for AMD/Intel), or, without a GPU, ' +
        'the Mesa lavapipe software driver, e.g. `apt-get install mesa-vulkan-drivers libvulkan1` (Mesa 23 or newer; on Debian 12 from bookworm-backports). ' +
        'Basin\'s scripts/setup-system.sh does this.';
    case 'darwin':
      return 'WebGPU uses Metal on macOS: update macOS (10.15 or newer) so that Metal is available.';
    case 'win32':
      return 'WebGPU uses Direct3D 12 on Windows: update your GPU driver (or install the WARP software adapter with the Graphics Tools optional feature).';
    default:
      return 'Install a Vulkan driver for your GPU.';
  }
}

// The module object of `webgpu` and the GPU object `create()` returns. The GPU object must stay strongly
// referenced for the device's whole life: if V8 collects it, Dawn frees its instance under a live device.
const liveInstances = new Set<unknown>();

async function loadDawn(): Promise<{ create: (flags: string[]) => GPU; globals: Record<string, unknown> }> {
  // Kept as a runtime import: `webgpu` is ESM and locates its native module from import.meta.url.
  paceDawnPolling(); // before Dawn's first wait: see dawn-polling.ts
  const mod = (await import('webgpu')) as unknown as { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  // Dawn's GPU* constants (GPUBufferUsage, GPUMapMode, …) are what WebGPU code expects as globals.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return mod;
}

// shader-f16 lets kernels declare `enable f16;` (f16 storage and arithmetic): mixed-precision training needs it and
// falls back to f32 without it (src/engine/train/mixed-precision.ts).
const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];

/**
 * Dawn toggles every Basin device runs with.
 * - disable_lazy_clear_for_mapped_at_creation_buffer: a buffer created mappedAtCreation is not zero-filled. WebGPU
 *   would zero it with a memset on the calling thread, the thread that drives the GPU; Basin's only such buffers
 *   are the upload staging buffers (gpu/upload-staging.ts), whose every copied byte is written first. So code that
 *   creates a buffer mappedAtCreation here must write every byte it later copies or reads.
 */
export const BASIN_DAWN_TOGGLES = ['disable_lazy_clear_for_mapped_at_creation_buffer'];

export interface GpuDeviceOptions {
  backend?: Backend;
  powerPreference?: GPUPowerPreference;
  /** Dawn toggles to enable besides BASIN_DAWN_TOGGLES, e.g. 'disable_robustness'. */
  toggles?: string[];
  /**
   * Features not to request even where the adapter has them (default: BASIN_DISABLE_FEATURES, comma-separated),
   * so that the paths for adapters without them (mixed precision without shader-f16) run on any machine.
   */
  withoutFeatures?: string[];
}

export class GpuDevice {
  private lostInfo: GPUDeviceLostInfo | null = null;
  private uncaptured: GPUError[] = [];

  private constructor(
    private readonly gpu: GPU,
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly info: GpuInfo,
  ) {
    liveInstances.add(gpu);
    device.lost.then((info) => {
      this.lostInfo = info;
    });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      if (this.uncaptured.length < 16) this.uncaptured.push(ev.error);
    };
  }

  static async create(opts: GpuDeviceOptions = {}): Promise<GpuDevice> {
    const backend = opts.backend ?? (process.env.BASIN_BACKEND as Backend | undefined) ?? 'default';
    const flags: string[] = [];
    if (backend !== 'default') flags.push(`backend=${backend}`);
    flags.push(`enable-dawn-features=${[...BASIN_DAWN_TOGGLES, ...(opts.toggles ?? [])].join(',')}`);
    let dawn;
    try {
      dawn = await loadDawn();
    } catch (e) {
      throw new NoAdapterError(`the WebGPU module failed to load: ${(e as Error).message}`);
    }
    const gpu = dawn.create(flags);
    liveInstances.add(gpu);
    let adapter: GPUAdapter | null = null;
    try {
      adapter = await gpu.requestAdapter({
        powerPreference: opts.powerPreference ?? 'high-performance',
        ...(backend === 'opengles' ? { featureLevel: 'compatibility' } : {}),
      } as GPURequestAdapterOptions);
    } catch (e) {
      liveInstances.delete(gpu);
      throw new NoAdapterError((e as Error).message);
    }
    if (!adapter) {
      liveInstances.delete(gpu);
      throw new NoAdapterError(backend === 'default' ? '' : `backend=${backend}`);
    }
    const withheld = new Set(opts.withoutFeatures ?? (process.env.BASIN_DISABLE_FEATURES ?? '').split(',').map((f) => f.trim()).filter(Boolean));
    const features = WANTED_FEATURES.filter((f) => adapter!.features.has(f) && !withheld.has(f));
    const requiredLimits: Record<string, number> = {};
    for (const key of limitNames(adapter.limits)) {
      // Basin binds one dynamic uniform buffer per pipeline: asking for the adapter's maximum of dynamic buffers
      // (a million on lavapipe) only makes Dawn print "artificially reduced" warnings before the user's output.
      if (DEFAULT_ONLY_LIMITS.has(key)) continue;
      const v = (adapter.limits as unknown as Record<string, number>)[key];
      if (typeof v === 'number') requiredLimits[key] = v;
    }
    const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
    const info = describe(adapter, device, backend);
    return new GpuDevice(gpu, adapter, device, info);
  }

  /** The device has shader-f16: kernels may use f16 types (`enable f16;`). */
  get hasF16(): boolean {
    return this.info.features.includes('shader-f16');
  }

  get isLost(): boolean {
    return this.lostInfo !== null;
  }

  /** Throws if the device was lost or an uncaptured validation error happened since the last check. */
  check(context = ''): void {
    if (this.lostInfo) throw new DeviceLostError(this.lostInfo.reason, this.lostInfo.message);
    if (this.uncaptured.length) {
      const errs = this.uncaptured.splice(0);
      throw new Error(`GPU error${context ? ` in ${context}` : ''}: ${errs.map((e) => e.message).join('\n')}`);
    }
  }

  /** Rejects with DeviceLostError when the device is lost, so a waiting job never hangs. */
  lostPromise(): Promise<never> {
    return this.device.lost.then((i) => {
      throw new DeviceLostError(i.reason, i.message);
    });
  }

  destroy(): void {
    this.device.destroy();
    // Release the instance only after the device is gone.
    setTimeout(() => liveInstances.delete(this.gpu), 100).unref?.();
  }
}

function limitNames(limits: GPUSupportedLimits): string[] {
  const names = new Set<string>();
  let proto: object | null = limits;
  while (proto && proto !== Object.prototype) {
    for (const k of Object.getOwnPropertyNames(proto)) names.add(k);
    proto = Object.getPrototypeOf(proto);
  }
  for (const k in limits) names.add(k);
  names.delete('constructor');
  return [...names].filter((k) => typeof (limits as unknown as Record<string, unknown>)[k] === 'number');
}

function describe(adapter: GPUAdapter, device: GPUDevice, requested: string): GpuInfo {
  const ai = (adapter as unknown as { info?: GPUAdapterInfo }).info ?? ({} as GPUAdapterInfo);
  const get = (k: string): string => String((ai as unknown as Record<string, unknown>)[k] ?? '');
  const limits: Record<string, number> = {};
  for (const k of limitNames(device.limits).sort()) limits[k] = (device.limits as unknown as Record<string, number>)[k];
  const description = get('description');
  const vendor = get('vendor');
  const fallback = Boolean((ai as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? /llvmpipe|lavapipe|swiftshader|warp/i.test(description + get('device')));
  const backendGuess = requested !== 'default' ? requested
    : process.platform === 'darwin' ? 'metal' : process.platform === 'win32' ? 'd3d12' : 'vulkan';
  const sgMin = Number((ai as unknown as Record<string, unknown>).subgroupMinSize ?? 0) || undefined;
  const sgMax = Number((ai as unknown as Record<string, unknown>).subgroupMaxSize ?? 0) || undefined;
  return {
    vendor,
    architecture: get('architecture'),
    device: get('device'),
    description,
    backend: backendGuess,
    fallback,
    features: [...device.features].map(String).sort(),
    limits,
    subgroupMinSize: sgMin,
    subgroupMaxSize: sgMax,
  };
}
