// What every benchmark report carries (../shared/notes/benchmarks.md): the commit and the device.
import { execSync } from 'node:child_process';
import * as path from 'node:path';

/** The repository root (bench/ sits in it; bundled into dist/cli.js, __dirname is dist/). */
export function packageRoot(): string {
  return path.resolve(__dirname, '..');
}

/** The short commit hash of the checkout, or null outside a git checkout. */
export function gitCommit(): string | null {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: packageRoot(), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || null;
  } catch {
    return null;
  }
}

/** The median (the mean of the middle two for an even count; NaN for none): every bench's summary of repeated timings. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
