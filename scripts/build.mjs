// Builds every bundle with esbuild, one call per bundle. `--watch` rebuilds on change; `--minify` for releases.
//   dist/extension.js   the extension host side (vscode API only; no native code), and next to it
//   dist/config-validator.js  the config validator, required by the extension on first use (not at activation)
//   dist/worker.js      the worker process (owns the GPU); `webgpu` and `onnxruntime-node` stay external:
//                       `webgpu` is ESM and finds dawn.node from import.meta.url, so it must be loaded by Node
//                       itself with `await import('webgpu')` (esbuild keeps a dynamic import of an external)
//   dist/cli.js         `basin <verb>` (bin/basin.js requires it)
//   dist/webview/<app>.js  one browser bundle per webview/<app>/main.ts (webview/shared/ is code the apps import,
//                       not an app; see webview/README.md)
import * as esbuild from 'esbuild';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Usage: node scripts/build.mjs [--watch] [--minify] [bundle…]   (bundle names: extension worker cli webview/<app>)
const argv = process.argv.slice(2);
const args = new Set(argv.filter((a) => a.startsWith('--')));
const only = argv.filter((a) => !a.startsWith('--'));
const watch = args.has('--watch');
const minify = args.has('--minify');

/** @type {import('esbuild').BuildOptions} */
const common = {
  absWorkingDir: root,
  bundle: true,
  sourcemap: true,
  minify,
  logLevel: 'warning',
  target: 'es2022',
  legalComments: 'none',
};

/** @type {import('esbuild').BuildOptions} */
const node = { ...common, platform: 'node', format: 'cjs', target: 'node20' };

/** @type {Record<string, import('esbuild').BuildOptions>} */
const bundles = {
  // Two outputs: the config validator (yaml + ajv + the schema, ~540 KiB) is a bundle of its own that the
  // diagnostics provider requires on first use (src/host/config/config-diagnostics.ts), so that activating the
  // extension does not compile it.
  extension: {
    ...node,
    entryPoints: { extension: 'src/extension.ts', 'config-validator': 'src/files/config/load.ts', 'merge-lib': 'src/host/merge/merge-lib.ts' },
    outdir: 'dist',
    external: ['vscode'],
  },
  worker: { ...node, entryPoints: ['src/worker/main.ts'], outfile: 'dist/worker.js', external: ['webgpu', 'onnxruntime-node'] },
  cli: { ...node, entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.js', external: ['webgpu', 'onnxruntime-node'] },
};

// Webview apps: every webview/<app>/main.ts → dist/webview/<app>.js (browser, IIFE), found anew on each build, so a
// new panel's folder needs no line here. webview/shared/ holds what the apps import (bridge, charts): never an app.
const webviewDir = join(root, 'webview');
const NOT_APPS = new Set(['shared']);
const webviewApps = existsSync(webviewDir)
  ? readdirSync(webviewDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !NOT_APPS.has(d.name) && existsSync(join(webviewDir, d.name, 'main.ts')))
      .map((d) => d.name)
  : [];
for (const app of webviewApps) {
  bundles[`webview/${app}`] = {
    ...common,
    platform: 'browser',
    format: 'iife',
    target: ['chrome120'],
    entryPoints: [`webview/${app}/main.ts`],
    outfile: `dist/webview/${app}.js`,
    loader: { '.css': 'text', '.svg': 'text' },
  };
}

/**
 * Fails the build if `webgpu` would be loaded with require() (it is ESM: Node must `import()` it) or, where
 * `mustImport`, if the bundle's dynamic `import('webgpu')` is gone.
 */
function checkDynamicImport(outfile, mustImport) {
  const text = readFileSync(join(root, outfile), 'utf8');
  if (/require\(\s*["']webgpu["']\s*\)/.test(text)) {
    throw new Error(`${outfile}: esbuild turned import('webgpu') into require('webgpu'); webgpu is ESM and must be import()ed`);
  }
  if (mustImport && !/import\(\s*["']webgpu["']\s*\)/.test(text)) {
    throw new Error(`${outfile}: the dynamic import('webgpu') is gone from the bundle; webgpu must be loaded by Node at run time`);
  }
}

/** Reports each bundle's result on rebuilds in watch mode. */
const reportPlugin = (name) => ({
  name: 'report',
  setup(build) {
    let t0 = 0;
    build.onStart(() => {
      t0 = performance.now();
    });
    build.onEnd((r) => {
      const ms = Math.round(performance.now() - t0);
      const status = r.errors.length ? `${r.errors.length} error(s)` : 'ok';
      console.log(`[build] ${name}: ${status} (${ms} ms)`);
    });
  },
});

for (const name of only) {
  if (!(name in bundles)) {
    console.error(`[build] unknown bundle '${name}'; known: ${Object.keys(bundles).join(', ')}`);
    process.exit(2);
  }
}
if (only.length) for (const name of Object.keys(bundles)) if (!only.includes(name)) delete bundles[name];

const t0 = performance.now();
if (watch) {
  const ctxs = await Promise.all(
    Object.entries(bundles).map(([name, o]) => esbuild.context({ ...o, plugins: [reportPlugin(name)] })),
  );
  await Promise.all(ctxs.map((c) => c.watch()));
  console.log(`[build] watching ${Object.keys(bundles).join(', ')} (Ctrl+C to stop)`);
  const stop = async () => {
    await Promise.all(ctxs.map((c) => c.dispose()));
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} else {
  const results = await Promise.allSettled(Object.entries(bundles).map(([, o]) => esbuild.build(o)));
  const failed = Object.keys(bundles).filter((_, i) => results[i].status === 'rejected');
  if (failed.length) {
    // esbuild has printed the errors already (logLevel).
    console.error(`[build] failed: ${failed.join(', ')}`);
    process.exit(1);
  }
  if (bundles.worker) checkDynamicImport('dist/worker.js', true);
  if (bundles.cli) checkDynamicImport('dist/cli.js', false);
  const outputs = (b) => b.outfile ?? Object.keys(b.entryPoints).map((k) => `${b.outdir}/${k}.js`).join(', ');
  console.log(`[build] ${Object.values(bundles).map(outputs).join(', ')} in ${Math.round(performance.now() - t0)} ms`);
}
