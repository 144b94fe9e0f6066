#!/usr/bin/env node
// `basin` on the command line: runs the bundled CLI (dist/cli.js, built from src/cli/main.ts).
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const cli = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write(`basin: ${path.relative(process.cwd(), cli) || cli} is missing. Build it first: run \`npm run build\` in ${path.dirname(__dirname)}.\n`);
  process.exit(1);
}
const mod = require(cli);
if (typeof mod.main !== 'function') {
  process.stderr.write('basin: dist/cli.js exports no main(); rebuild with `npm run build`.\n');
  process.exit(1);
}
mod.main(process.argv);
