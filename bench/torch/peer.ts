// PyTorch (CPU) as a peer process: bench/torch/basin_torch.py runs as a python3 subprocess that answers one
// JSON line per command (see its docstring). Used by `basin bench train-step`, `basin bench matmul` and the parity
// tier (test/torch/). Tensors go over as safetensors files in a private temporary folder.
//
// Installing it: `sudo bash scripts/setup-system.sh --torch` (Debian's python3-torch and libopenblas0-pthread;
// without OpenBLAS, Debian's torch falls back to the reference BLAS and is as slow as a naive loop, so `info()`
// reports which BLAS the process actually mapped). Where python3 or torch is missing, `startTorch` returns a
// `why` instead of throwing, so a benchmark can report the peer as null.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { writeSafetensors, readSafetensorsHeader, readTensor } from '../../src/files/safetensors';
import type { ModelSpec } from '../../src/engine/nn/models';
import type { Batch } from '../../src/engine/train/data-source';

export const TORCH_SETUP_HINT = 'install it with `sudo bash scripts/setup-system.sh --torch` (python3-torch and libopenblas0-pthread)';

export interface TorchInfo {
  torch: string;
  python: string;
  threads: number;
  blas: { kind: string; libraries: string[] };
  /** The python executable that runs the peer. */
  executable: string;
}

export interface TorchOptimizer {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Global gradient-norm clipping (0: none). */
  clip: number;
}

type Reply = Record<string, unknown> & { ok: boolean; error?: string };

/** The script, found from the package root whether this runs from bench/ (tsx) or from the dist/ bundle. */
export function torchScript(): string {
  const candidates = [path.join(__dirname, 'basin_torch.py'), path.resolve(__dirname, '..', 'bench', 'torch', 'basin_torch.py'), path.resolve(__dirname, '..', '..', 'bench', 'torch', 'basin_torch.py')];
  return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

export class TorchPeer {
  private readonly pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private stderr = '';
  private exited: string | null = null;
  readonly dir: string;
  info!: TorchInfo;

  private constructor(private readonly child: ChildProcessWithoutNullStreams, readonly python: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-torch-'));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const p = this.pending.shift();
      if (!p) return;
      try {
        p.resolve(JSON.parse(line) as Reply);
      } catch {
        p.reject(new Error(`PyTorch peer: unreadable reply ${line.slice(0, 200)}`));
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    const fail = (why: string) => {
      this.exited = why;
      for (const p of this.pending.splice(0)) p.reject(new Error(why));
    };
    child.on('exit', (code, signal) => fail(`PyTorch peer exited (${signal ?? `code ${code}`})${this.stderr ? `: ${lastLine(this.stderr)}` : ''}`));
    child.on('error', (e) => fail(`PyTorch peer could not start: ${e.message}`));
  }

  /**
   * Starts the peer and asks for its versions and BLAS; `why` when python3 or torch is missing. Tries
   * $BASIN_PYTHON, then `python3` on the PATH, then the system's /usr/bin/python3 (where Debian's python3-torch
   * lives: a pyenv or venv python3 earlier on the PATH does not see it).
   */
  static async start(opts: { threads?: number } = {}): Promise<TorchPeer | { why: string }> {
    const env = { ...process.env };
    if (opts.threads) env.OMP_NUM_THREADS = String(opts.threads);
    const candidates = process.env.BASIN_PYTHON ? [process.env.BASIN_PYTHON] : ['python3', '/usr/bin/python3'];
    const whys: string[] = [];
    for (const python of [...new Set(candidates)]) {
      let child: ChildProcessWithoutNullStreams;
      try {
        child = spawn(python, ['-u', torchScript()], { stdio: ['pipe', 'pipe', 'pipe'], env });
      } catch (e) {
        whys.push(`${python}: ${(e as Error).message}`);
        continue;
      }
      const peer = new TorchPeer(child, python);
      try {
        const r = await peer.call({ cmd: 'info' });
        peer.info = { ...(r as unknown as TorchInfo), executable: python };
        return peer;
      } catch (e) {
        peer.close();
        const msg = (e as Error).message;
        if (/ModuleNotFoundError|No module named 'torch'/.test(msg)) whys.push(`${python}: no module torch`);
        else if (/ENOENT/.test(msg)) whys.push(`${python}: not found`);
        else whys.push(`${python}: ${msg}`);
      }
    }
    return { why: `PyTorch is not available (${whys.join('; ')}): ${TORCH_SETUP_HINT}` };
  }

  /** One command; rejects with the peer's error message. */
  call(cmd: Record<string, unknown>): Promise<Reply> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise<Reply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.child.stdin.write(JSON.stringify(cmd) + '\n');
    }).then((r) => {
      if (!r.ok) throw new Error(`PyTorch peer, ${String(cmd.cmd)}: ${r.error}`);
      return r;
    });
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** The model with these initial weights (Basin's parameter names and shapes) and an AdamW like Basin's. */
  async loadModel(spec: ModelSpec, weights: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, decay: readonly string[], opt: TorchOptimizer): Promise<{ params: number }> {
    const file = this.file('weights.safetensors');
    await writeSafetensors(file, [...weights].map(([name, w]) => ({ name, dtype: 'F32' as const, shape: w.shape, data: w.data })));
    const r = await this.call({ cmd: 'model', spec, weights: file, order: [...weights.keys()], decay, opt });
    return { params: r.params as number };
  }

  /** A batch under a name: token ids [B, T] or features [rows, n], and targets. */
  async loadBatch(name: string, batch: Batch): Promise<void> {
    const file = this.file(`batch-${name}.safetensors`);
    const x = batch.features
      ? { name: 'features', dtype: 'F32' as const, shape: [batch.rows, batch.features.length / batch.rows], data: batch.features }
      : { name: 'inputs', dtype: 'I32' as const, shape: [batch.rows / batch.seqLen!, batch.seqLen!], data: batch.inputs! };
    await writeSafetensors(file, [x, { name: 'targets', dtype: 'I32', shape: [batch.targets.length], data: batch.targets }]);
    await this.call({ cmd: 'batch', name, file });
  }

  /** One training step on a loaded batch: loss and the step's wall time inside the peer (ms). */
  async step(batch: string, lr?: number): Promise<{ loss: number; ms: number; gradNorm: number | null }> {
    const r = await this.call({ cmd: 'step', batch, ...(lr === undefined ? {} : { lr }) });
    return { loss: r.loss as number, ms: r.ms as number, gradNorm: (r.grad_norm as number | null) ?? null };
  }

  /** Loss and gradients of the current weights on a batch (no update). */
  async grads(batch: string): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    const out = this.file('grads.safetensors');
    const r = await this.call({ cmd: 'grads', batch, out });
    return { loss: r.loss as number, grads: await readAllF32(out) };
  }

  async weights(): Promise<Map<string, Float32Array>> {
    const out = this.file('weights-out.safetensors');
    await this.call({ cmd: 'weights', out });
    return readAllF32(out);
  }

  close(): void {
    if (!this.exited) {
      try {
        this.child.stdin.end(JSON.stringify({ cmd: 'quit' }) + '\n');
      } catch {
        /* already gone */
      }
      const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
      t.unref?.();
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function readAllF32(file: string): Promise<Map<string, Float32Array>> {
  const header = await readSafetensorsHeader(file);
  const out = new Map<string, Float32Array>();
  for (const name of Object.keys(header.tensors)) out.set(name, (await readTensor(file, name, header)).data as Float32Array);
  return out;
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

/** A one-line description of the peer for reports: `pytorch-cpu 1.13.1 (openblas-pthread, 2 threads)`. */
export function describeTorch(info: TorchInfo): string {
  return `pytorch-cpu ${info.torch} (${info.blas.kind} BLAS, ${info.threads} thread${info.threads === 1 ? '' : 's'})`;
}
