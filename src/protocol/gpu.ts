// The adapter a worker's GPU device runs on, as the engine describes it and the host shows it (types only).

/** What `basin gpu-info` prints and the GPU view lists. */
export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  fallback: boolean;
  features: string[];
  limits: Record<string, number>;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
}
