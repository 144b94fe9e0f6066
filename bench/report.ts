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
