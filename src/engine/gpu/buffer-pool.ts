// A pool of storage buffers bucketed by size. `release()` parks a buffer as pending until the next submit, then
// `onSubmit()` moves it to the free lists. A pending buffer may be handed out again at once for an output that
// only recorded GPU work will write (the queue runs commands in order, and WebGPU orders dispatches that share a
// buffer), which is what lets a backward pass reuse the memory of gradients it has consumed within one step.
// A buffer the host will fill with queue.writeBuffer (`hostWrite`) must come from the free lists only:
// writeBuffer runs at once on the queue timeline, before unsubmitted work that may still read the old contents.

const STORAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC

let nextBufferId = 1;
const ids = new WeakMap<GPUBuffer, number>();

/** A stable small integer per buffer, for cache keys. */
export function bufferId(b: GPUBuffer): number {
  let id = ids.get(b);
  if (id === undefined) {
    id = nextBufferId++;
    ids.set(b, id);
  }
  return id;
}

/** Sizes round up to a bucket so that buffers of similar sizes are interchangeable. */
export function bucketSize(bytes: number): number {
  const min = 256;
  if (bytes <= min) return min;
  // Powers of two up to 1 MiB, then steps of 1/8 of the next power of two (at most 12.5% waste).
  const p = 2 ** Math.ceil(Math.log2(bytes));
  if (p <= 1 << 20) return p;
  const step = p / 8;
  return Math.ceil(bytes / step) * step;
}

export interface PoolStats {
  liveBytes: number;
  pooledBytes: number;
  peakLiveBytes: number;
  peakTotalBytes: number;
  created: number;
  reused: number;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  /** Released since the last submit, by size. */
  private pending = new Map<number, GPUBuffer[]>();
  private pendingBytes = 0;
  private liveBytes = 0;
  private pooledBytes = 0;
  private stats: PoolStats = { liveBytes: 0, pooledBytes: 0, peakLiveBytes: 0, peakTotalBytes: 0, created: 0, reused: 0 };
  /** Called when a buffer is destroyed, so caches that reference it can drop their entries. */
  onDestroy: ((b: GPUBuffer) => void) | null = null;

  constructor(private readonly device: GPUDevice, private readonly maxPooledBytes = 1 << 30) {}

  acquire(bytes: number, label?: string, opts: { hostWrite?: boolean } = {}): GPUBuffer {
    const size = bucketSize(Math.max(4, bytes));
    let buf = opts.hostWrite ? undefined : this.pending.get(size)?.pop();
    if (buf) {
      this.pendingBytes -= size;
      this.stats.reused++;
    } else if ((buf = this.free.get(size)?.pop())) {
      this.pooledBytes -= size;
      this.stats.reused++;
    } else {
      buf = this.device.createBuffer({ size, usage: STORAGE, label });
      this.stats.created++;
    }
    this.liveBytes += size;
    this.track();
    return buf;
  }

  /** Return a buffer to the pool; reusable after the next submit. */
  release(buf: GPUBuffer): void {
    this.liveBytes -= buf.size;
    let list = this.pending.get(buf.size);
    if (!list) this.pending.set(buf.size, (list = []));
    list.push(buf);
    this.pendingBytes += buf.size;
  }

  /** Call right after queue.submit(): buffers released before it become reusable. */
  onSubmit(): void {
    for (const b of [...this.pending.values()].flat()) {
      if (this.pooledBytes + b.size > this.maxPooledBytes) {
        this.onDestroy?.(b);
        b.destroy();
        continue;
      }
      let list = this.free.get(b.size);
      if (!list) this.free.set(b.size, (list = []));
      list.push(b);
      this.pooledBytes += b.size;
    }
    this.pending.clear();
    this.pendingBytes = 0;
    this.track();
  }

  /** Destroy every pooled (free) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) {
      this.onDestroy?.(b);
      b.destroy();
    }
    this.free.clear();
    this.pooledBytes = 0;
  }

  /** Count bytes the caller allocated outside the pool (flat parameter buffers) in the high-water mark. */
  trackExternal(deltaBytes: number): void {
    this.liveBytes += deltaBytes;
    this.track();
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.liveBytes;
    this.stats.peakTotalBytes = this.liveBytes + this.pooledBytes;
  }

  snapshot(): PoolStats {
    return { ...this.stats, liveBytes: this.liveBytes, pooledBytes: this.pooledBytes };
  }

  private track(): void {
    if (this.liveBytes > this.stats.peakLiveBytes) this.stats.peakLiveBytes = this.liveBytes;
    const total = this.liveBytes + this.pooledBytes + this.pendingBytes;
    if (total > this.stats.peakTotalBytes) this.stats.peakTotalBytes = total;
  }
}
