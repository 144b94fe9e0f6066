// `basin gpu-info`: the adapter, backend, limits and features, or the driver to install when there is none.
import { GpuDevice, GpuInfo } from '../engine/gpu/device';

export function formatGpuInfo(info: GpuInfo): string {
  const lines = [
    `adapter     ${info.description || info.device || '(no description)'}`,
    `vendor      ${info.vendor || '?'}${info.architecture ? ` (${info.architecture})` : ''}`,
    `backend     ${info.backend}${info.fallback ? ' — software fallback adapter: correct but slow' : ''}`,
    `features    ${info.features.join(', ') || 'none'}`,
  ];
  if (info.subgroupMinSize) lines.push(`subgroups   ${info.subgroupMinSize}–${info.subgroupMaxSize}`);
  const key = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage'];
  lines.push('limits');
  for (const k of key) if (k in info.limits) lines.push(`  ${k.padEnd(36)} ${info.limits[k].toLocaleString('en-US')}`);
  return lines.join('\n');
}

export async function gpuInfoCommand(opts: { json?: boolean }): Promise<void> {
  const gpu = await GpuDevice.create();
  try {
    process.stdout.write(opts.json ? JSON.stringify(gpu.info) + '\n' : formatGpuInfo(gpu.info) + '\n');
  } finally {
    gpu.destroy();
  }
}
