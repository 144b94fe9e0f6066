// `basin demo`: trains the example transformer on generated sequences (a sparse random Markov chain over items),
// then shows what it learned: validation loss, top-1 accuracy and HR@10 against chance.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../files/config/load';
import { fmtMetrics, runTrain } from './train';

function findExample(name: string): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'examples', name);
    if (fs.existsSync(p)) return p;
    dir = path.dirname(dir);
  }
  throw new Error(`examples/${name} not found above ${__dirname}`);
}

export async function demoCommand(opts: { output?: string; steps?: number }): Promise<void> {
  const started = Date.now();
  const file = findExample('demo.basin.yaml');
  const { config } = loadConfig(file);
  const out = process.stdout;
  out.write(`Basin demo: a ${config.model.type === 'transformer' ? `${config.model.layers}-layer transformer (d=${config.model.dModel}, ${config.model.heads} heads)` : 'model'} ` +
    `learns to predict the next item of generated sequences.\nconfig: ${path.relative(process.cwd(), file)}\n\n`);
  const result = await runTrain(config, file, { output: opts.output ?? 'runs', steps: opts.steps });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  out.write('\nWhat it learned (validation set, next-item prediction):\n');
  if (result.eval && result.chance) {
    out.write(`  model   ${fmtMetrics(result.eval)}\n`);
    out.write(`  chance  ${fmtMetrics(result.chance)}\n`);
    out.write(`  HR@10 is ${(result.eval.hr10 / result.chance.hr10).toFixed(1)}× chance, top-1 accuracy ${(result.eval.accuracy / result.chance.accuracy).toFixed(1)}× chance.\n`);
  }
  out.write(`\nCheckpoint: ${result.checkpoint ? path.join(result.runDir, result.checkpoint) : '(none)'}\nRun folder: ${result.runDir} (run.json, metrics.jsonl)\nTook ${secs} s.\n`);
}
