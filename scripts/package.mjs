// `npm run package`: builds, then packs a platform-specific .vsix for this machine's platform (vsce --target),
// e.g. basin-linux-x64-0.1.0.vsix. `--target <t>` packs for another target (the native WebGPU folder must be
// in node_modules/webgpu/dist/ — the npm package ships all five).
//
// What goes in is an allow-list (.vscodeignore: `**` left out, then `!` includes): dist/, kernels/ (with the
// included files in kernels/common/), media/,
// schemas/, package.json, README.md, LICENSE, and of node_modules only webgpu's package.json + index.js + the one
// dist/<platform>-<arch>/ folder holding dawn.node. Everything else the extension uses is bundled into dist/.
//
// Why not `vsce --no-dependencies`: with it, vsce (3.6) never looks inside node_modules at all, so webgpu could not
// be shipped. vsce's npm dependency walk (`npm list --production`) lists the candidates and the allow-list then
// keeps only the webgpu files above; the contents are checked after packing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipEntries } from './zip-entries.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const targetArg = argv.find((a, i) => argv[i - 1] === '--target') ?? argv.find((a) => a.startsWith('--target='))?.slice(9);

/** vsce target for this machine: linux-x64, linux-arm64, alpine-x64, darwin-arm64, win32-x64… */
function currentTarget() {
  const arch = process.arch;
  if (process.platform === 'linux') {
    const musl = !process.report?.getReport?.().header?.glibcVersionRuntime;
    return `${musl ? 'alpine' : 'linux'}-${arch}`;
  }
  return `${process.platform}-${arch}`;
}
const target = targetArg ?? currentTarget();
const [platform, arch] = target.split('-');
// webgpu's folder names: darwin-universal for both Macs; linux-* also serves alpine only if the binary is musl-built
// (it is not: webgpu 0.6 ships glibc builds), so alpine is refused.
const nodePlatform = platform === 'alpine' ? null : platform;
if (!nodePlatform) {
  console.error(`[package] no WebGPU (dawn.node) build for ${target} in the webgpu package`);
  process.exit(2);
}
const webgpuDir = nodePlatform === 'darwin' ? 'darwin-universal' : `${nodePlatform}-${arch}`;
if (!existsSync(join(root, 'node_modules', 'webgpu', 'dist', webgpuDir))) {
  console.error(`[package] node_modules/webgpu/dist/${webgpuDir} is missing: run npm install`);
  process.exit(2);
}

const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`[package] ${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
  return r;
};

const t0 = Date.now();
// 1. Build every bundle (`--no-build`: use dist/ as it is).
if (!argv.includes('--no-build')) run(process.execPath, ['scripts/build.mjs']);

// 2. The allow-list plus this target's native folder.
const ignoreFile = join(root, 'out', `vscodeignore-${target}`);
mkdirSync(dirname(ignoreFile), { recursive: true });
writeFileSync(ignoreFile, `${readFileSync(join(root, '.vscodeignore'), 'utf8').trimEnd()}\n!node_modules/webgpu/dist/${webgpuDir}/**\n`);

// 3. vsce.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const vsix = join(root, `${pkg.name}-${target}-${pkg.version}.vsix`);
const vsce = join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
// --no-rewrite-relative-links: the README's screenshots are repository-relative (docs/images, not shipped); without a
// repository URL vsce would refuse to package rather than leave them relative.
run(process.execPath, [vsce, 'package', '--target', target, '--ignoreFile', ignoreFile, '--allow-missing-repository', '--no-rewrite-relative-links', '--out', vsix], {
  stdio: ['ignore', 'inherit', 'inherit'],
});

// 4. Check the contents: only allowed paths, and the files the extension cannot run without. The archive is
// read with yauzl (a devDependency), not `unzip`, which a fresh machine lacks.
let entries;
try {
  entries = await zipEntries(vsix);
} catch (e) {
  console.error(`[package] cannot read ${vsix}: ${e.message}`);
  process.exit(1);
}
{
  const files = entries.filter((f) => f.startsWith('extension/')).map((f) => f.slice('extension/'.length));
  const allowed = [/^dist\//, /^kernels\/(common\/)?[^/]+\.wgsl$/, /^media\//, /^schemas\//, /^package\.json$/, /^readme\.md$/i, /^license(\.txt|\.md)?$/i,
    /^node_modules\/webgpu\/(package\.json|index\.js|LICENSE\.md)$/, new RegExp(`^node_modules/webgpu/dist/${webgpuDir}/`)];
  const stray = files.filter((f) => !allowed.some((re) => re.test(f)));
  const required = ['dist/extension.js', 'dist/config-validator.js', 'dist/worker.js', 'package.json', 'node_modules/webgpu/index.js', 'node_modules/webgpu/package.json'];
  // Every kernel file in the repository, the included ones under kernels/common/ too: a missing one fails at run time.
  for (const dir of ['kernels', 'kernels/common']) {
    if (!existsSync(join(root, dir))) continue;
    for (const f of readdirSync(join(root, dir))) if (f.endsWith('.wgsl')) required.push(`${dir}/${f}`);
  }
  const missing = required.filter((f) => !files.includes(f));
  if (!files.some((f) => f.startsWith(`node_modules/webgpu/dist/${webgpuDir}/`) && f.endsWith('.node'))) missing.push(`node_modules/webgpu/dist/${webgpuDir}/*.node`);
  if (stray.length || missing.length) {
    if (stray.length) console.error(`[package] not on the allow-list:\n  ${stray.join('\n  ')}`);
    if (missing.length) console.error(`[package] missing:\n  ${missing.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`[package] contents checked: ${files.length} files`);
}
const mb = (statSync(vsix).size / 2 ** 20).toFixed(1);
console.log(`[package] ${vsix.slice(root.length + 1)} (${mb} MiB, ${target}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
