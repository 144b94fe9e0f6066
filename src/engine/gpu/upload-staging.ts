// Uploads that a file read fills in place: mapped MAP_WRITE staging buffers, reused.
//
// queue.writeBuffer copies the caller's bytes into Dawn's own staging memory on the calling thread, and then the
// GPU copies them again. For a merge that streams gigabytes from disk, that is a host copy of every input byte on
// the main thread, the thread that also drives the GPU. Here a read goes straight into a mapped buffer's memory
// (getMappedRange is the driver's host-visible memory, not a copy), and the upload is an unmap plus a copy
// recorded in order with the kernels that read it. `basin bench merge` shows the upload's time per tensor and the
// staging buffers a merge held.
//
// A staging buffer's life: lent mapped (acquire) → filled by the caller → recordCopy (unmapped, a copy recorded) →
// after the runtime submitted the copy, remapAfterSubmit maps it again (the map resolves once the GPU has done the
// copy) → free again. A lent buffer handed back unused (release) is free at once: it is still mapped.
// While a read fills a lent buffer's memory, the buffer must stay mapped: destroy() waits for the fills it was told
// about (track) before unmapping anything, else a file read would write into memory the driver has freed.
import type { BufferBinding, Runtime } from './runtime';

const MAP_WRITE = 0x0002;
const COPY_SRC = 0x0004;
const WRITE_MODE = 0x0002;

export interface StagedBytes {
  /** The mapped memory to fill (byteLength: the bytes asked for). */
  bytes: Uint8Array;
  /** The staging buffer behind it. */
  readonly buffer: GPUBuffer;
}

export class UploadStaging {
  /** Mapped and unused, by size (bytes rounded up to 4). */
  private free = new Map<number, GPUBuffer[]>();
  /** Unmapped with a recorded copy: to map again once that copy is submitted. */
  private toRemap: GPUBuffer[] = [];
  /** Maps in flight, and fills the caller asked us to wait for. */
  private waits = new Set<Promise<unknown>>();
  /** The mapped memory of each buffer while it is mapped (getMappedRange once per mapping). */
  private ranges = new Map<GPUBuffer, ArrayBuffer>();
  /** Maps in flight, by size, and the acquires waiting for one of them. */
  private remapping = new Map<number, number>();
  private waiting = new Map<number, ((b: GPUBuffer | null) => void)[]>();
  /** Lent out by acquire and not yet given back or copied. */
  private lent = new Set<GPUBuffer>();
  private destroyed = false;
  /** Buffers created and the bytes they hold (a benchmark and the tests read them). */
  created = 0;
  heldBytes = 0;
  peakHeldBytes = 0;

  /** @param keepPerSize free buffers of one size kept for reuse (more are destroyed when their map returns). */
  constructor(private readonly rt: Runtime, private readonly keepPerSize = 8) {}

  /**
   * A mapped staging buffer of at least `bytes` bytes; `bytes` views the first `bytes` of its memory. When none of
   * that size is free but one is on its way back (its copy submitted, its map in flight), that one is awaited
   * rather than a new one made: a merge then holds one set of staging buffers for the task being uploaded and
   * reuses them for the next task's reads, instead of two sets. A buffer whose map is in flight comes back
   * whatever the caller does, so waiting for it cannot deadlock.
   */
  async acquire(bytes: number): Promise<StagedBytes> {
    if (this.destroyed) throw new Error('UploadStaging: used after destroy()');
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    let buffer = this.free.get(size)?.pop() ?? null;
    if (!buffer && (this.remapping.get(size) ?? 0) > (this.waiting.get(size)?.length ?? 0)) {
      buffer = await new Promise<GPUBuffer | null>((resolve) => {
        let list = this.waiting.get(size);
        if (!list) this.waiting.set(size, (list = []));
        list.push(resolve);
      });
      if (this.destroyed) {
        if (buffer) this.drop(buffer);
        throw new Error('UploadStaging: used after destroy()');
      }
    }
    if (!buffer) {
      // Mapped at creation and not zero-filled: the device runs with Dawn's
      // disable_lazy_clear_for_mapped_at_creation_buffer (gpu/device.ts), since the caller fills every byte that
      // is copied (and the pad to a whole word is zeroed below). Dawn's zero-fill was a memset on this thread that,
      // on a driver whose memory is fresh host pages (lavapipe), also faulted in every page: about a fifth of a
      // merge's main-thread time in a profile. The pages are now first touched by the file read that fills them.
      buffer = this.rt.device.createBuffer({ size, usage: MAP_WRITE | COPY_SRC, mappedAtCreation: true, label: 'basin-upload-staging' });
      this.created++;
      this.heldBytes += size;
      this.peakHeldBytes = Math.max(this.peakHeldBytes, this.heldBytes);
    }
    this.lent.add(buffer);
    // One getMappedRange per mapping (a second call on the same mapping is an error): a buffer given back unused
    // keeps its range for the next borrower.
    let range = this.ranges.get(buffer);
    if (!range) this.ranges.set(buffer, (range = buffer.getMappedRange(0, size)));
    // Copies move whole words: the bytes between `bytes` and the next word are copied too, so they are zeroed here
    // (a buffer mapped at creation holds whatever its memory held, and a reused one the last upload's bytes).
    const wordEnd = Math.ceil(bytes / 4) * 4;
    if (wordEnd > bytes) new Uint8Array(range, bytes, wordEnd - bytes).fill(0);
    return { buffer, bytes: new Uint8Array(range, 0, bytes) };
  }

  /** A lent buffer given back unused (still mapped): free at once. */
  release(s: StagedBytes): void {
    if (!this.lent.delete(s.buffer) || this.destroyed) return;
    this.park(s.buffer);
  }

  /** Wait for `p` (a read filling lent memory) before destroy() unmaps anything. */
  track(p: Promise<unknown>): void {
    this.hold(p.then(() => undefined, () => undefined));
  }

  /** destroy() waits for `w` (which never rejects). */
  private hold(w: Promise<void>): void {
    this.waits.add(w);
    void w.then(() => this.waits.delete(w));
  }

  /**
   * Unmaps a filled buffer and records the copy of its first `bytes` bytes into dst (in order with the runtime's
   * recorded kernels). Call remapAfterSubmit() once the runtime has flushed.
   */
  recordCopy(s: StagedBytes, dst: BufferBinding, bytes: number): void {
    if (!this.lent.delete(s.buffer)) throw new Error('UploadStaging.recordCopy: a buffer not lent (or given back already)');
    this.ranges.delete(s.buffer);
    s.buffer.unmap();
    const size = Math.ceil(bytes / 4) * 4; // copies move whole words; the buffer is sized so
    if (size > 0) this.rt.copy({ buffer: s.buffer, offset: 0, size }, dst, size);
    this.toRemap.push(s.buffer);
  }

  /** Maps again every buffer whose copy the runtime has now submitted (each is free once the GPU has copied it). */
  remapAfterSubmit(): void {
    const bufs = this.toRemap;
    this.toRemap = [];
    for (const b of bufs) {
      this.remapping.set(b.size, (this.remapping.get(b.size) ?? 0) + 1);
      this.hold(b.mapAsync(WRITE_MODE).then(
        () => {
          this.remapping.set(b.size, this.remapping.get(b.size)! - 1);
          if (!this.destroyed) this.park(b);
        },
        () => {
          // Device lost or destroyed meanwhile: the buffer is of no more use, and a waiter counting on it makes one.
          this.remapping.set(b.size, this.remapping.get(b.size)! - 1);
          this.drop(b);
          const list = this.waiting.get(b.size);
          if (list && list.length > (this.remapping.get(b.size) ?? 0)) list.shift()!(null);
        },
      ));
    }
  }

  private park(b: GPUBuffer): void {
    const waiter = this.waiting.get(b.size)?.shift();
    if (waiter) return waiter(b);
    let list = this.free.get(b.size);
    if (!list) this.free.set(b.size, (list = []));
    if (list.length < this.keepPerSize) list.push(b);
    else this.drop(b);
  }

  private drop(b: GPUBuffer): void {
    this.ranges.delete(b);
    this.heldBytes -= b.size;
    b.destroy();
  }

  /**
   * Waits for the fills and maps in flight, then destroys every buffer (copies recorded but not yet submitted are
   * submitted first: a destroyed buffer may not be used by a later submit).
   */
  async destroy(): Promise<void> {
    if (this.toRemap.length) this.rt.flush();
    while (this.waits.size) await Promise.all([...this.waits]);
    this.destroyed = true;
    for (const b of this.lent) this.drop(b);
    this.lent.clear();
    for (const list of this.free.values()) for (const b of list) this.drop(b);
    this.free.clear();
    for (const b of this.toRemap) this.drop(b);
    this.toRemap = [];
  }
}
