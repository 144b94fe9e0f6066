#!/usr/bin/env node
// `basin` on the command line: runs the bundled CLI (dist/cli.js, built from src/cli/main.ts).
//
// The GPU driver (Dawn) writes its own notices straight to the process's stderr from native code, before Basin's
// first line ("Warning: maxDynamic… artificially reduced…"): nothing in Node can stop a native write to fd 2. So
// the CLI runs in a child process whose stderr passes through a filter here: the driver's known chatter is held
// back (shown with --verbose, and shown anyway when a command fails over the GPU, since they may then explain why), everything
// else — progress bars included — passes through as it comes.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { spawn } = require('node:child_process');

const cli = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write(`basin: ${path.relative(process.cwd(), cli) || cli} is missing. Build it first: run \`npm run build\` in ${path.dirname(__dirname)}.\n`);
  process.exit(1);
}

/** Lines the driver prints on its own (Dawn's adapter notices); kept out of what a user reads. */
const DRIVER_CHATTER = /^Warning: .*(artificially reduced|dynamic offset allocation)/;

function runHere() {
  const mod = require(cli);
  if (typeof mod.main !== 'function') {
    process.stderr.write('basin: dist/cli.js exports no main(); rebuild with `npm run build`.\n');
    process.exit(1);
  }
  mod.main(process.argv);
}

if (process.env.BASIN_CLI_CHILD === '1' || process.env.BASIN_NO_FILTER === '1') {
  // The child: stderr is a pipe to the parent's filter; when the parent's stderr is a terminal, let the progress
  // bar behave as on a terminal (it checks isTTY and columns).
  const cols = Number(process.env.BASIN_TTY_COLUMNS);
  if (cols > 0) Object.assign(process.stderr, { isTTY: true, columns: cols });
  // The parent is only a filter: if it dies (killed), so does this process — a trainer must never keep writing a
  // run folder that a resumed process is writing too. The IPC channel closes when the parent goes; it keeps
  // nothing alive (unref).
  if (process.channel) {
    process.channel.unref();
    process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
  }
  runHere();
} else {
  const verbose = process.argv.includes('--verbose') || process.env.BASIN_VERBOSE === '1';
  const env = { ...process.env, BASIN_CLI_CHILD: '1' };
  if (process.stderr.isTTY) env.BASIN_TTY_COLUMNS = String(process.stderr.columns || 80);
  const child = spawn(process.execPath, [...process.execArgv, __filename, ...process.argv.slice(2)], { stdio: ['inherit', 'inherit', 'pipe', 'ipc'], env });
  const held = [];
  /** What the CLI said its failure was ('gpu' or 'other'; src/cli/main.ts), or null: it died before saying. */
  let failure = null;
  child.on('message', (m) => {
    if (m && typeof m === 'object' && (m.basinFailure === 'gpu' || m.basinFailure === 'other')) failure = m.basinFailure;
  });
  let pending = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl + 1);
      pending = pending.slice(nl + 1);
      if (!verbose && DRIVER_CHATTER.test(line)) held.push(line);
      else process.stderr.write(line);
    }
    // A partial line (a progress bar redrawn with \r) goes out at once unless it may still become chatter.
    if (pending && !'Warning: '.startsWith(pending.slice(0, 9)) && !pending.startsWith('Warning: ')) {
      process.stderr.write(pending);
      pending = '';
    }
  });
  // Ctrl-C at a terminal reaches the whole process group, so the child has it already (a second SIGINT would mean
  // "quit at once" to it); a signal sent to this process alone is passed on.
  process.on('SIGINT', () => {
    if (!process.stdin.isTTY) child.kill('SIGINT');
  });
  for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('close', (code, signal) => {
    if (pending) process.stderr.write(pending);
    // A config error or a bad file needs no driver notices under it; a GPU failure, or a crash that said nothing, may.
    if ((signal || (code !== 0 && failure !== 'other')) && held.length) process.stderr.write(`basin: the GPU driver said:\n${held.join('')}`);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
