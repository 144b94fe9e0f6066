// `basin <verb>`: the command line on the same engine the extension's worker uses.
import { DeviceLostError, NoAdapterError } from '../engine/gpu/device';
import { Command, InvalidArgumentError } from 'commander';
import { BENCH_NAMES, SASREC_LOSS_NAMES, benchCommand } from './bench';
import { demoCommand } from './demo';
import { evalCommand } from './eval';
import { gpuInfoCommand } from './gpu-info';
import { pruneCommand } from './prune';
import { mergeCommand } from './merge';
import { studyCommand } from './study';
import { trainCommand } from './train';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function buildProgram(): Command {
  const program = new Command('basin')
    .description('Basin: train, fine-tune, merge and prune models on any GPU (WebGPU).')
    // Read by bin/basin.js, which holds the GPU driver's own notices back unless this is given.
    .option('--verbose', "also show the GPU driver's own messages (held back otherwise)")
    .showHelpAfterError();

  program
    .command('gpu-info')
    .description('show the WebGPU adapter, backend, limits and features')
    .option('--json', 'print one JSON object')
    .action((o) => gpuInfoCommand(o));

  program
    .command('train')
    .description('train from a config file (*.basin.yaml or *.basin.json); writes a run folder')
    .argument('<config>', 'config file')
    .option('--resume <runDir>', 'continue a run from its last checkpoint')
    .option('--from-checkpoint <step>', "with --resume: start from this checkpoint's step instead of the latest (when the latest is unreadable)", positiveInt)
    .option('--output <dir>', 'parent folder of run folders (overrides the config)')
    .option('--steps <n>', 'override train.steps', positiveInt)
    .option('--profile', 'print per-kernel dispatch counts and timings')
    .option('--json', 'print metrics as JSON lines on stdout')
    .action((config: string, o) => trainCommand(config, o));

  program
    .command('merge')
    .description('merge models from a mergekit-style config (*.merge.yaml): every mergekit method plus fisher, regmean and curvature')
    .argument('<config>', 'merge config file')
    .option('--out <dir>', "output folder (default: the config's basin.output, else merged/<name> beside the config)")
    .option('--force', 'write over a merged model already in the output folder')
    .option('--preview', 'merge a sample of the tensors and rows and print the statistics; write nothing')
    .option('--json', 'print the merge report as one JSON object')
    .action((config: string, o) => mergeCommand(config, o));

  program
    .command('eval')
    .description("score models (run folders, checkpoints, merged models) on tasks (training configs' validation and test splits)")
    .argument('<model...>', 'run folders, checkpoints or safetensors models')
    .requiredOption('--task <config...>', 'training configs whose model, data and loss define the tasks')
    .option('--metric <name>', 'metric of the table: accuracy, loss, hr10 …', 'accuracy')
    .option('--split <which>', 'validation, test (data with a held-out test split) or both', 'both')
    .option('--json', 'print every result as one JSON object')
    .action((models: string[], o) => evalCommand(models, o));

  program
    .command('study')
    .description('run a study: methods compared on the same models, one table (merge)')
    .argument('<name>', 'study name')
    .option('--json', 'print the report as one JSON object on the last line')
    .option('--quick', 'fewer steps and settings')
    .option('--out <dir>', 'keep the runs and models here (default: a temporary folder)')
    .option('--experts-only', "merge: only train the study's experts into --out and write experts.merge.yaml over them")
    .action((name: string, o) => studyCommand(name, o));

  program
    .command('demo')
    .description('train a small transformer on generated sequences and show what it learned')
    .option('--output <dir>', 'parent folder of the run folder', 'runs')
    .option('--steps <n>', 'training steps', positiveInt)
    .action((o) => demoCommand(o));

  program
    .command('prune')
    .description('prune a run\'s checkpoint: the sparsity sweep (--sweep) or one score at one density written as a checkpoint (--out)')
    .argument('<input>', 'run folder, checkpoint inside one (checkpoints/step-N.safetensors), or training config (its newest run)')
    .option('--sweep', 'evaluate every score at every density; writes <run>/prune/sweep-<time>.json and prints a table')
    .option('--score <names>', 'scores, comma-separated: magnitude, random, curvature, wanda, sparsegpt (sweep default: magnitude,random)')
    .option('--density <d>', 'fraction of the targeted weights kept, in (0, 1] (apply)')
    .option('--densities <list>', 'sweep densities, e.g. 1,0.5,0.1 or 100,50,10% (default 100 … 10, 5, 1 %)')
    .option('--pattern <N:M>', 'semi-structured: keep N of every M inputs per row (2:4, 4:8)')
    .option('--granularity <g>', 'where the threshold is taken: row | tensor | global (default: row for wanda alone, as its paper; else tensor)')
    .option('--targets <globs>', 'name globs of the tensors to prune (default: 2-D weights of the blocks / layers, not the head)')
    .option('--base <model>', 'prune the task vector θ − θ_base (a checkpoint, a run folder or config, or a model folder: one file or shards): pruned entries are reset to the base')
    .option('--step <n>', 'the checkpoint step of a run folder (default: the latest)', positiveInt)
    .option('--out <dir>', 'apply: folder for model.safetensors and prune-report.json')
    .option('--seed <n>', 'random score: seed')
    .option('--batches <n>', 'wanda / sparsegpt: calibration batches')
    .option('--damp <x>', 'sparsegpt: dampening (fraction of the mean diagonal)')
    .option('--block-size <n>', 'sparsegpt: columns per block')
    .option('--calibration <mode>', 'sparsegpt: sequential (each layer from the pruned earlier layers\' outputs; default) | one-pass (all from the dense model)')
    .option('--json', 'print the sweep file or the report as one JSON object')
    .action((input: string, o) => pruneCommand(input, o));

  program
    .command('bench')
    .description(`run a benchmark: ${BENCH_NAMES.join(' | ')}`)
    .argument('<name>', 'benchmark name')
    .option('--json', 'print the report as one JSON object on the last line')
    .option('--quick', 'fewer cases and repetitions')
    .option('--catalogs <list>', 'loss: catalog sizes, comma-separated (default 10000,100000,1000000)')
    .option('--tokens <n>', 'loss: tokens per batch (default 4096; 1024 with --quick)')
    .option('--shape <MxD>', 'merge: M matrices of D × D per model, e.g. 8x2048 (default 32x4096; 48x1024 with --quick)')
    .option('--reps <n>', 'merge: repetitions (default 1; 3 with --quick)')
    .option('--whole', 'merge: every tensor merged whole, as on a hardware GPU (a software adapter then holds ~10 f32 copies of the largest tensor in host memory)')
    .option('--steps <n>', 'sasrec: step budget per run (default 4000; 3000 with --quick; early stopping ends most runs sooner); optimizer-quality: training steps per case (default 120; 30 with --quick)')
    .option('--seeds <n>', 'sasrec: seeds per loss (default 3; 1 with --quick), or a list of seeds such as 2,3')
    .option('--losses <list>', `sasrec: only these losses, comma-separated: ${SASREC_LOSS_NAMES} (default all; popularity always)`)
    .option('--variants', 'optimizer-quality: also mao with one setting changed (no error feedback, rank 8 or 128, refitEvery, lr)')
    .action((name: string, o) => benchCommand(name, o));

  return program;
}

/** A failure of the GPU or its driver: no adapter, a lost device, a validation error Dawn reported. */
function isGpuFailure(e: Error): boolean {
  return e instanceof NoAdapterError || e instanceof DeviceLostError || /^GPU error\b|\bdevice (was )?lost\b/i.test(e.message);
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`basin: ${err.message}\n`);
    if (process.env.BASIN_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 1;
    // Under bin/basin.js's filter: whether the failure is the GPU's, so the driver's held notices (which can explain
    // only that) are shown under it and not under a config or data error.
    if (process.env.BASIN_CLI_CHILD === '1' && typeof process.send === 'function') process.send({ basinFailure: isGpuFailure(err) ? 'gpu' : 'other' });
  }
}

if (require.main === module) void main();
