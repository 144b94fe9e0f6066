// Mocha reporter for scripts/test-all.mjs: prints like `spec` and, at the end, writes the counts as JSON to the
// file given by `--reporter-option summary=<path>` (or env BASIN_TEST_SUMMARY):
//   { "passed": n, "failed": n, "pending": n, "durationMs": n, "failures": [{ "title", "error" }] }
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Mocha = require('mocha');

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options = {}) {
    super(runner, options);
    const file = (options.reporterOption || options.reporterOptions || {}).summary || process.env.BASIN_TEST_SUMMARY;
    const failures = [];
    runner.on(Mocha.Runner.constants.EVENT_TEST_FAIL, (test, err) => {
      failures.push({ title: test.fullTitle(), error: (err && err.message) || String(err) });
    });
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      if (!file) return;
      const s = runner.stats || {};
      const summary = { passed: s.passes || 0, failed: s.failures || 0, pending: s.pending || 0, durationMs: s.duration || 0, failures };
      fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(summary, null, 2));
    });
  }
}

module.exports = SummaryReporter;
