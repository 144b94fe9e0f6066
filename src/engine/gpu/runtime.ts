// The runtime records kernel dispatches into one open compute pass and submits them in one command buffer when
// the caller reads something back or calls flush(). Pipelines, layouts and bind groups are cached; uniforms go
// into a ring buffer written once per submit (dynamic offsets), so a dispatch costs no buffer creation.
import { BufferPool, bufferId } from './buffer-pool';
import { GpuDevice } from './device';
import { KernelCompileError, KernelSpec, kernelKey, kernelPath, kernelSource } from './kernels';
import { type Tensor, bindingLimitError } from '../tensor/tensor';

export interface BufferBinding {
  buffer: GPUBuffer;
  offset: number;
  size: number;
  /** Set by Tensor.binding() (a whole tensor): lets dispatch name it when it exceeds the binding limit. */
  tensor?: Tensor;
}

/** Uniform values in declaration order; `format` gives each one's type: u (u32), i (i32), f (f32). Default u. */
export interface Uniforms {
  values: readonly number[];
  format?: string;
}

interface CompiledKernel {
  id: number;
  spec: KernelSpec;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

export interface DispatchCounters {
  dispatches: number;
  submits: number;
  byKernel: Map<string, number>;
}

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment on every adapter we know
const UNIFORM_SLOTS = 4096;
const MAX_GROUPS = 65535;

export class Runtime {
  readonly pool: BufferPool;
  private kernels = new Map<string, CompiledKernel>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private compileChecks: Promise<void>[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private uniformRing: GPUBuffer;
  private uniformStage = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS);
  private uniformU32 = new Uint32Array(this.uniformStage);
  private uniformI32 = new Int32Array(this.uniformStage);
  private uniformF32 = new Float32Array(this.uniformStage);
  private uniformSlot = 0;
  private nextKernelId = 1;
  /** The device's maxStorageBufferBindingSize, read once (dispatch checks it on every binding). */
  private readonly deviceMaxBinding: number;
  /** Test-only smaller binding limit (setMaxBindingBytes), so that chunked paths run on small tensors. */
  private bindingOverride: number | null = null;
  readonly counters: DispatchCounters = { dispatches: 0, submits: 0, byKernel: new Map() };
  /**
   * When set, every dispatch gets its own pass with timestamp writes (see profiler); `beforeSubmit` lets it
   * record its query resolves into the command buffer flush() is about to submit, `afterSubmit` read them back.
   */
  profiler: {
    beginDispatch(key: string): GPUComputePassTimestampWrites | undefined;
    beforeSubmit?(encoder: GPUCommandEncoder): void;
    afterSubmit?(): void;
  } | null = null;

  constructor(readonly gpu: GpuDevice) {
    this.deviceMaxBinding = gpu.info.limits.maxStorageBufferBindingSize ?? 134217728;
    this.pool = new BufferPool(gpu.device);
    this.pool.onDestroy = () => this.bindGroups.clear();
    this.uniformRing = gpu.device.createBuffer({
      size: UNIFORM_SLOT * UNIFORM_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'basin-uniform-ring',
    });
  }

  get device(): GPUDevice {
    return this.gpu.device;
  }

  /** Whether kernels may use f16 (the device was created with shader-f16). */
  get hasF16(): boolean {
    return this.gpu.hasF16;
  }

  get limits(): Record<string, number> {
    return this.gpu.info.limits;
  }

  /**
   * Largest byte range one storage binding may cover: the device's maxStorageBufferBindingSize, or the smaller
   * test-only value set with setMaxBindingBytes(). Ops that split tensors into binding-sized pieces plan with
   * it, and Tensor.binding() refuses tensors above it.
   */
  get maxBindingBytes(): number {
    return this.bindingOverride ?? this.deviceMaxBinding;
  }

  /**
   * Tests only: pretend one binding covers at most `bytes` (a multiple of 256, at most the device's limit), so
   * the chunked paths (embedding, linear, flat buffers materialized afterwards) and the binding guard run on
   * small tensors. null restores the device's limit. Returns the previous override.
   */
  setMaxBindingBytes(bytes: number | null): number | null {
    if (bytes !== null && (!Number.isInteger(bytes) || bytes < 256 || bytes % 256 !== 0 || bytes > this.deviceMaxBinding)) {
      throw new Error(`setMaxBindingBytes: ${bytes} must be a multiple of 256 between 256 and the device's ${this.deviceMaxBinding}`);
    }
    const prev = this.bindingOverride;
    this.bindingOverride = bytes;
    return prev;
  }

  kernel(spec: KernelSpec): CompiledKernel {
    const key = kernelKey(spec);
    const hit = this.kernels.get(key);
    if (hit) return hit;
    const dev = this.device;
    const file = `kernels/${spec.file}.wgsl`;
    const code = kernelSource(spec);
    dev.pushErrorScope('validation');
    const module = dev.createShaderModule({ code, label: kernelPath(spec.file) });
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ...spec.bindings.map((a, i) => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: a === 'read' ? 'read-only-storage' : 'storage' } as GPUBufferBindingLayout,
      })),
    ];
    const layout = dev.createBindGroupLayout({ entries, label: key });
    const pipeline = dev.createComputePipeline({
      layout: dev.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entry, constants: spec.overrides as Record<string, number> | undefined },
      label: key,
    });
    const scope = dev.popErrorScope();
    const info = module.getCompilationInfo();
    this.compileChecks.push(
      Promise.all([scope, info]).then(([err, ci]) => {
        const msgs = ci.messages.filter((m) => m.type === 'error').map((m) => `${file}:${m.lineNum}:${m.linePos}: ${m.message}`);
        if (msgs.length || err) {
          this.kernels.delete(key);
          throw new KernelCompileError(file, spec.entry, msgs.length ? msgs.join('\n') : String(err?.message));
        }
      }),
    );
    const compiled: CompiledKernel = { id: this.nextKernelId++, spec, pipeline, layout };
    this.kernels.set(key, compiled);
    return compiled;
  }

  /** Awaits pending compile checks; throws KernelCompileError naming the kernel file. */
  async checkCompiles(): Promise<void> {
    if (!this.compileChecks.length) return;
    const checks = this.compileChecks.splice(0);
    await Promise.all(checks);
  }

  /**
   * Record one dispatch. `groups` is the number of workgroups; x larger than the 65,535 limit is folded into y
   * (kernels recover the linear workgroup index as wid.x + wid.y * nwg.x).
   */
  dispatch(spec: KernelSpec, buffers: readonly BufferBinding[], uniforms: Uniforms, groups: number | [number, number?, number?]): void {
    if (buffers.length !== spec.bindings.length) {
      throw new Error(`kernel ${spec.file}:${spec.entry} takes ${spec.bindings.length} buffers, got ${buffers.length}`);
    }
    // The binding guard, in one place: a whole tensor above the limit (test override included) is refused by
    // name before anything is recorded; other ranges (flat chunks, row ranges) against the device's own limit.
    // A Dawn validation error instead would surface only at submit and void the whole command buffer.
    const limit = this.maxBindingBytes;
    for (let i = 0; i < buffers.length; i++) {
      const b = buffers[i];
      if (b.tensor && b.size > limit) throw bindingLimitError(b.tensor, b.size, limit, `kernel ${spec.file}:${spec.entry}`);
      if (b.size > this.deviceMaxBinding) {
        throw new Error(
          `kernel ${spec.file}:${spec.entry}: binding ${i + 1} covers ${buffers[i].size} bytes, over this device's ` +
            `maxStorageBufferBindingSize (${this.deviceMaxBinding} bytes); the caller must split it into binding-sized ranges`,
        );
      }
    }
    const k = this.kernel(spec);
    let [gx, gy = 1, gz = 1] = typeof groups === 'number' ? [groups] : groups;
    if (gx > MAX_GROUPS) {
      gy *= Math.ceil(gx / MAX_GROUPS);
      gx = MAX_GROUPS;
    }
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (this.uniformSlot >= UNIFORM_SLOTS) this.flush();
    const slot = this.uniformSlot++;
    this.writeUniforms(slot, uniforms);

    let bgKey = `${k.id}`;
    for (const b of buffers) bgKey += `|${bufferId(b.buffer)}:${b.offset}:${b.size}`;
    let bg = this.bindGroups.get(bgKey);
    if (!bg) {
      if (this.bindGroups.size > 8192) this.bindGroups.clear();
      bg = this.device.createBindGroup({
        layout: k.layout,
        entries: [
          { binding: 0, resource: { buffer: this.uniformRing, offset: 0, size: UNIFORM_SLOT } },
          ...buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: b.buffer, offset: b.offset, size: b.size } })),
        ],
      });
      this.bindGroups.set(bgKey, bg);
    }
    const key = `${spec.file}:${spec.entry}`;
    let pass: GPUComputePassEncoder;
    const ts = this.profiler?.beginDispatch(key);
    if (ts) {
      this.endPass();
      pass = this.commandEncoder().beginComputePass({ timestampWrites: ts });
    } else {
      pass = this.computePass();
    }
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, bg, [slot * UNIFORM_SLOT]);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (ts) pass.end();
    this.counters.dispatches++;
    this.counters.byKernel.set(key, (this.counters.byKernel.get(key) ?? 0) + 1);
  }

  private writeUniforms(slot: number, u: Uniforms): void {
    const base = (slot * UNIFORM_SLOT) / 4;
    const fmt = u.format ?? '';
    if (u.values.length > UNIFORM_SLOT / 4) throw new Error('too many uniform values');
    for (let i = 0; i < u.values.length; i++) {
      const t = fmt[i] ?? 'u';
      const v = u.values[i];
      if (t === 'f') this.uniformF32[base + i] = v;
      else if (t === 'i') this.uniformI32[base + i] = v;
      else this.uniformU32[base + i] = v >>> 0;
    }
  }

  commandEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) this.pass = this.commandEncoder().beginComputePass();
    return this.pass;
  }

  /** End the open compute pass so copies can be recorded. */
  endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Record a buffer-to-buffer copy in order with the dispatches. */
  copy(src: BufferBinding, dst: BufferBinding, bytes = Math.min(src.size, dst.size)): void {
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(src.buffer, src.offset, dst.buffer, dst.offset, bytes);
  }

  /** Write host data into a buffer in order with the recorded work (flushes pending work first). */
  write(dst: BufferBinding, data: ArrayBufferView): void {
    // writeBuffer executes on the queue timeline before any not-yet-submitted encoder: submit what is recorded
    // first so the write lands after the work that precedes it in program order.
    if (this.encoder) this.flush();
    this.device.queue.writeBuffer(dst.buffer, dst.offset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Submit everything recorded so far in one command buffer. */
  flush(): void {
    this.endPass();
    if (!this.encoder && this.uniformSlot === 0) return;
    if (this.uniformSlot > 0) {
      this.device.queue.writeBuffer(this.uniformRing, 0, this.uniformStage, 0, this.uniformSlot * UNIFORM_SLOT);
    }
    const enc = this.encoder ?? this.device.createCommandEncoder();
    this.encoder = null;
    this.uniformSlot = 0;
    this.profiler?.beforeSubmit?.(enc);
    this.device.queue.submit([enc.finish()]);
    this.counters.submits++;
    this.pool.onSubmit();
    this.profiler?.afterSubmit?.();
  }

  /** Copy a range back to the host. Flushes recorded work; rejects if the device is lost. */
  async readBytes(src: BufferBinding, bytes = src.size): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(size, 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    if (size > 0) this.copy(src, { buffer: staging, offset: 0, size }, size);
    this.flush();
    await this.checkCompiles();
    try {
      await Promise.race([staging.mapAsync(GPUMapMode.READ), this.gpu.lostPromise()]);
      this.gpu.check();
      return staging.getMappedRange().slice(0, bytes);
    } finally {
      staging.destroy();
    }
  }

  /** Wait until all submitted work has finished (and surface compile or validation errors). */
  async sync(): Promise<void> {
    this.flush();
    await this.checkCompiles();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.gpu.lostPromise()]);
    this.gpu.check();
  }

  /** Workgroup counts for a 1-D kernel over n items with `wg` invocations per group. */
  static groups1d(n: number, wg: number): number {
    return Math.ceil(n / wg);
  }
}
