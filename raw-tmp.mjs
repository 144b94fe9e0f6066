import { create, globals } from 'webgpu';
import fs from 'node:fs';
Object.assign(globalThis, globals);
const gpu = create([...(process.env.TOG ? [process.env.TOG] : [])]);
const adapter = await gpu.requestAdapter();
const device = await adapter.requestDevice();
const src = fs.readFileSync('/work/main/kernels/matmul.wgsl', 'utf8');
const entry = process.argv[2] ?? 'matmul_x';
const M = 1024, N = 1024, K = 1024;
const mod = device.createShaderModule({ code: src });
const pipe = device.createComputePipeline({ layout: 'auto', compute: { module: mod, entryPoint: entry, constants: { WGX: 8, WGY: 8 } } });
const mk = (n, usage) => device.createBuffer({ size: n * 4, usage });
const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const a = mk(M * K, S), b = mk(K * N, S), c = mk(M * N, S);
device.queue.writeBuffer(a, 0, new Float32Array(M * K).fill(1)); device.queue.writeBuffer(b, 0, new Float32Array(K * N).fill(1));
const u = device.createBuffer({ size: 64, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
device.queue.writeBuffer(u, 0, new Uint32Array([M, N, K, 1, 0, 0, M * N, 0, 16, 16, 0, 0]));
const layout = pipe.getBindGroupLayout(0);
const entries = [{ binding: 0, resource: { buffer: u } }, { binding: 1, resource: { buffer: a } }, { binding: 2, resource: { buffer: b } }, { binding: 4, resource: { buffer: c } }];
const bg = device.createBindGroup({ layout, entries });
async function run(reps) {
  const t0 = performance.now();
  const enc = device.createCommandEncoder(); const p = enc.beginComputePass(); p.setPipeline(pipe); p.setBindGroup(0, bg);
  for (let i = 0; i < reps; i++) p.dispatchWorkgroups(16, 16);
  p.end(); device.queue.submit([enc.finish()]); await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / reps;
}
await run(1);
for (let r = 0; r < 3; r++) { const t = await run(2); console.log(entry, (2 * M * N * K / t / 1e6).toFixed(2), 'GFLOP/s', t.toFixed(0), 'ms'); }
