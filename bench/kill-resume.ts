// `basin bench kill-resume`: SIGKILL the training process (`node bin/basin.js train <config> --resume <run>`) at
// random points KILLS times during one run, resuming each time, then check what a user would open afterwards.
//
// The process killed is `node bin/basin.js train …` with BASIN_NO_FILTER=1, i.e. the training process itself: without
// it bin/basin.js runs the CLI in a child and a SIGKILL to the wrapper leaves the trainer running, writing the
// run folder alongside the resumed process (seen: interleaved metrics.jsonl, stats.bin frames out of order).
//
// The run: a small transformer (the demo's shape) with a checkpoint every CHECKPOINT_EVERY steps, statistics every
// 5 steps (stats.bin + stats/step-N.safetensors) and a metrics row every step (so the bench sees each step as the
// process reports it on stdout with --json). The total is KILLS · 2 · CHECKPOINT_EVERY steps, more than the kills
// can consume, so every kill lands in a live run. Kill points, drawn from Basin's PRNG with a fixed seed:
//   startup     a random time before the process reported its first step (device creation, kernel compiles,
//               checkpoint loading, run.json and stats.bin rewrites on resume)
//   step        a random step within the next two checkpoint intervals, plus a random fraction of a step
//   checkpoint  right after one of the next two checkpoint steps was logged, plus up to two step times: the
//               window in which the weights, the optimizer state, the statistics and run.json are being written
// The first life is never a startup kill (it creates the run folder).
//
// Checked afterwards: the final process completes; every checkpoint, optimizer-state and statistics
// safetensors file parses and every tensor in it reads (weights finite); run.json parses, opens as a run record
// and says completed; stats.bin decodes to its last byte with steps strictly increasing; metrics.jsonl lines parse.
// `corrupt_files` counts the files that fail. `max_steps_lost` = the most steps any kill threw away (the last step
// the killed process had logged minus the step the next process resumed from). The final weights and optimizer
// state are compared with an uninterrupted run of the same config, and that run is repeated once to tell whether
// the engine is deterministic at all (if two uninterrupted runs differ, a difference after kills says nothing).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Rng } from '../src/engine/data/rng';
import { readSafetensorsHeader, readTensor } from '../src/files/safetensors';
import { openRun } from '../src/files/run-record';
import { decodeStatsFrame, STATS_FILE } from '../src/protocol/stats';
import { gitCommit, median, packageRoot } from './report';

export interface KillResumeBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
  /** Tests: fewer kills. */
  kills?: number;
}

const CHECKPOINT_EVERY = 10;
const SEED = 20261201;

function config(steps: number): object {
  return {
    name: 'kill-resume',
    seed: 3,
    model: { type: 'transformer', vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16, mlpRatio: 4, dropout: 0 },
    data: { type: 'synthetic-sequences', sequences: 2000, length: 17, branching: 3, noise: 0.1, validFraction: 0.1 },
    train: {
      steps,
      batchSize: 32,
      optimizer: { type: 'adamw', lr: 0.003, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
      schedule: { type: 'cosine', warmup: 10, minLrRatio: 0.1 },
      gradClip: 1.0,
      evalEvery: 50,
      checkpointEvery: CHECKPOINT_EVERY,
      statsEvery: 5,
      logEvery: 1,
    },
    output: 'runs',
  };
}

interface Life {
  /** How the process ended: killed by us, exited by itself (code), or hung (killed after the watchdog). */
  end: 'killed' | 'exited' | 'hung';
  code: number | null;
  /** Step the process resumed from (0 for a fresh start); null when it was killed before it said. */
  startStep: number | null;
  /** Last step it reported. */
  lastStep: number;
  firstStepMs: number | null;
  ms: number;
  stderr: string;
  runDir: string | null;
}

type KillPlan = { kind: 'none' } | { kind: 'startup'; atMs: number } | { kind: 'step' | 'checkpoint'; step: number; delayMs: number };

/** One process: runs `basin train` until the plan says kill (or it exits). */
function runLife(args: string[], plan: KillPlan, watchdogMs: number): Promise<Life> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    // bin/basin.js normally runs the CLI in a child process of its own (to filter the driver's stderr), and a
    // SIGKILL to the wrapper leaves that child training: BASIN_NO_FILTER=1 makes the spawned process the training
    // process itself. It gets a process group of its own and the kill goes to the group, so nothing survives it.
    const child = spawn(process.execPath, [path.join(packageRoot(), 'bin', 'basin.js'), ...args], {
      cwd: packageRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, BASIN_NO_FILTER: '1' },
    });
    const life: Life = { end: 'exited', code: null, startStep: null, lastStep: -1, firstStepMs: null, ms: 0, stderr: '', runDir: null };
    let killed = false;
    const kill = (why: 'killed' | 'hung') => {
      if (killed) return;
      killed = true;
      life.end = why;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    let watchdog = setTimeout(() => kill('hung'), watchdogMs);
    const bump = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => kill('hung'), watchdogMs);
    };
    if (plan.kind === 'startup') setTimeout(() => kill('killed'), plan.atMs);
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: { type?: string; step?: number };
      try {
        msg = JSON.parse(line) as { type?: string; step?: number };
      } catch {
        return; // the final line is the checkpoint path
      }
      if (msg.type !== 'log' || typeof msg.step !== 'number') return;
      bump();
      if (life.firstStepMs === null) life.firstStepMs = performance.now() - t0;
      life.lastStep = Math.max(life.lastStep, msg.step);
      if ((plan.kind === 'step' || plan.kind === 'checkpoint') && msg.step >= plan.step) {
        if (plan.delayMs <= 0) kill('killed');
        else setTimeout(() => kill('killed'), plan.delayMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      life.stderr = (life.stderr + d.toString()).slice(-20000);
      const r = /run folder (\S+)( \(resuming at step (\d+)\))?/.exec(life.stderr);
      if (r) {
        life.runDir = r[1];
        life.startStep = r[3] ? Number(r[3]) : 0;
      }
    });
    child.on('exit', (code) => {
      clearTimeout(watchdog);
      life.code = code;
      life.ms = performance.now() - t0;
      resolve(life);
    });
  });
}

/** Steps of the weights checkpoints on disk. */
function latestSteps(runDir: string): number[] {
  try {
    return fs.readdirSync(path.join(runDir, 'checkpoints')).map((f) => /^step-(\d+)\.safetensors$/.exec(f)).filter((m) => m !== null).map((m) => Number(m![1]));
  } catch {
    return [];
  }
}

/** Every tensor of a safetensors file reads; weights (not stats) are finite. Null when fine, else the problem. */
async function checkSafetensors(file: string, finite: boolean): Promise<string | null> {
  try {
    const header = await readSafetensorsHeader(file);
    for (const name of Object.keys(header.tensors)) {
      const t = await readTensor(file, name, header);
      if (finite && t.data.some((x) => !Number.isFinite(x))) return `${name} holds a non-finite value`;
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

async function readTensors(file: string): Promise<Map<string, Float32Array>> {
  const header = await readSafetensorsHeader(file);
  const out = new Map<string, Float32Array>();
  for (const name of Object.keys(header.tensors)) out.set(name, (await readTensor(file, name, header)).data as Float32Array);
  return out;
}

/** Bitwise equality of two tensor maps, and the largest absolute difference where they differ. */
function compareTensors(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { equal: boolean; maxAbsDiff: number; differing: number } {
  let equal = a.size === b.size;
  let maxAbsDiff = 0;
  let differing = 0;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.length !== x.length) {
      equal = false;
      differing++;
      continue;
    }
    const xb = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const yb = new Uint32Array(y.buffer, y.byteOffset, y.length);
    let same = true;
    for (let i = 0; i < x.length; i++) {
      if (xb[i] !== yb[i]) {
        same = false;
        maxAbsDiff = Math.max(maxAbsDiff, Math.abs(x[i] - y[i]));
      }
    }
    if (!same) {
      equal = false;
      differing++;
    }
  }
  return { equal, maxAbsDiff, differing };
}

/** The files a user would open, checked; each entry is a file and its problem. */
async function checkRunFolder(runDir: string): Promise<{ files: number; corrupt: { file: string; problem: string }[]; strayTemp: string[]; statsFrames: number; metricsRows: number; metricsDuplicateSteps: number; status: string | null }> {
  const corrupt: { file: string; problem: string }[] = [];
  let files = 0;
  const strayTemp: string[] = [];
  let status: string | null = null;
  // run.json: JSON, and a run record.
  files++;
  try {
    JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8'));
    status = (await openRun(runDir)).record.status;
  } catch (e) {
    corrupt.push({ file: 'run.json', problem: (e as Error).message });
  }
  // Checkpoints and statistics snapshots.
  for (const sub of ['checkpoints', 'stats']) {
    const dir = path.join(runDir, sub);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith('.safetensors')) {
        strayTemp.push(`${sub}/${f}`);
        continue;
      }
      files++;
      const problem = await checkSafetensors(path.join(dir, f), sub === 'checkpoints');
      if (problem) corrupt.push({ file: `${sub}/${f}`, problem });
    }
  }
  for (const f of fs.readdirSync(runDir)) if (!/^(run\.json|metrics\.jsonl|stats\.bin|checkpoints|stats)$/.test(f)) strayTemp.push(f);
  // stats.bin: frames to the last byte, steps increasing.
  let statsFrames = 0;
  const statsPath = path.join(runDir, STATS_FILE);
  if (fs.existsSync(statsPath)) {
    files++;
    const bytes = new Uint8Array(fs.readFileSync(statsPath));
    try {
      let off = 0;
      let lastStep = -1;
      while (off < bytes.length) {
        const r = decodeStatsFrame(bytes, off);
        if (!r) throw new Error(`a truncated frame at byte ${off} of ${bytes.length}`);
        if (r.frame.step <= lastStep) throw new Error(`frame for step ${r.frame.step} after step ${lastStep}`);
        lastStep = r.frame.step;
        statsFrames++;
        off = r.next;
      }
    } catch (e) {
      corrupt.push({ file: STATS_FILE, problem: (e as Error).message });
    }
  }
  // metrics.jsonl: every line JSON. Steps redone after a resume appear twice (reported, not corrupt).
  let metricsRows = 0;
  let metricsDuplicateSteps = 0;
  const metricsPath = path.join(runDir, 'metrics.jsonl');
  if (fs.existsSync(metricsPath)) {
    files++;
    const seen = new Set<string>();
    const lines = fs.readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.length > 0);
    let bad = 0;
    for (const l of lines) {
      try {
        const row = JSON.parse(l) as { step: number; loss?: number };
        metricsRows++;
        const key = `${row.step}:${'loss' in row ? 'train' : 'val'}`;
        if (seen.has(key)) metricsDuplicateSteps++;
        seen.add(key);
      } catch {
        bad++;
      }
    }
    if (bad) corrupt.push({ file: 'metrics.jsonl', problem: `${bad} line(s) are not JSON` });
  }
  return { files, corrupt, strayTemp, statsFrames, metricsRows, metricsDuplicateSteps, status };
}


export async function runKillResumeBench(opts: KillResumeBenchOptions): Promise<object> {
  const { log } = opts;
  const kills = opts.kills ?? (opts.quick ? 5 : 20);
  const totalSteps = kills * 2 * CHECKPOINT_EVERY + CHECKPOINT_EVERY;
  const cli = path.join(packageRoot(), 'dist', 'cli.js');
  if (!fs.existsSync(cli)) throw new Error(`kill-resume runs the built CLI: ${cli} is missing (npm run build)`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-kill-resume-'));
  const cfgFile = path.join(work, 'kill-resume.basin.json');
  fs.writeFileSync(cfgFile, JSON.stringify(config(totalSteps), null, 2));
  const rng = new Rng(SEED);
  const watchdogMs = 180_000;
  log(`kill-resume: ${kills} kills over a ${totalSteps}-step run (checkpoint every ${CHECKPOINT_EVERY} steps), work folder ${work}`);

  try {
    // The uninterrupted reference, twice (is the engine deterministic?).
    const refs: string[] = [];
    const refTimes: number[] = [];
    for (let i = 0; i < 2; i++) {
      const out = path.join(work, `reference-${i}`);
      const life = await runLife(['train', cfgFile, '--output', out, '--json'], { kind: 'none' }, watchdogMs);
      if (life.code !== 0 || !life.runDir) throw new Error(`the uninterrupted run ${i + 1} failed (exit ${life.code}): ${life.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      refs.push(life.runDir);
      refTimes.push(life.ms);
      log(`  uninterrupted run ${i + 1}: ${(life.ms / 1000).toFixed(1)} s, first step after ${((life.firstStepMs ?? 0) / 1000).toFixed(1)} s`);
    }
    const stepMs = Math.max(5, (refTimes[0] - 4000) / totalSteps);

    // The killed run. A kill counts as survived when the next process resumes by itself (it reports where it
    // resumed from, or it is itself killed at startup, which tells nothing yet and leaves the question to the
    // one after). A resume that fails and names an older checkpoint to use (`--from-checkpoint N`) is retried
    // that way, as a user would, and the kill it follows counts as not survived.
    const out = path.join(work, 'killed');
    let runDir: string | null = null;
    const rows: Record<string, unknown>[] = [];
    const startupTimes: number[] = [];
    const notes: string[] = [];
    let failure: string | null = null;
    /** Rows whose kill has not yet been followed by a process that said where it resumed. */
    let waiting: Record<string, unknown>[] = [];
    let fromCheckpoint: number | null = null;
    let badStep = 0;
    let base = 0; // the step the current stretch of training started from (plans are relative to it)
    let lives = 0;
    for (;;) {
      if (++lives > kills * 3 + 5) {
        failure ??= 'too many processes: the run is not making progress';
        break;
      }
      const done = rows.length;
      const last = done === kills;
      // Plans are relative to the checkpoint the next process will resume from: the newest on disk.
      if (runDir) base = Math.max(0, ...latestSteps(runDir));
      let plan: KillPlan;
      if (last || fromCheckpoint !== null) plan = { kind: 'none' };
      else {
        const u = rng.float();
        const kind = done > 0 && u < 0.2 ? 'startup' : u < 0.6 ? 'step' : 'checkpoint';
        if (kind === 'startup') plan = { kind, atMs: rng.float() * (startupTimes.length ? median(startupTimes) : 3000) };
        else if (kind === 'step') plan = { kind, step: Math.min(totalSteps - 1, base + 1 + rng.int(2 * CHECKPOINT_EVERY)), delayMs: rng.float() * stepMs };
        else {
          const next = (Math.floor(base / CHECKPOINT_EVERY) + 1 + rng.int(2)) * CHECKPOINT_EVERY;
          plan = { kind, step: Math.min(totalSteps - 1, next), delayMs: rng.float() * 2 * stepMs };
        }
      }
      const args = runDir ? ['train', cfgFile, '--resume', runDir, '--json'] : ['train', cfgFile, '--output', out, '--json'];
      if (fromCheckpoint !== null) args.push('--from-checkpoint', String(fromCheckpoint));
      const retried = fromCheckpoint;
      fromCheckpoint = null;
      // A retry with --from-checkpoint runs until it has rewritten the bad checkpoint (one step past it), then is
      // stopped the same way; it is recovery, not one of the counted kills.
      const life = await runLife(args, retried !== null ? { kind: 'step', step: badStep + 1, delayMs: 0 } : plan, watchdogMs);
      runDir ??= life.runDir ?? (fs.existsSync(out) ? fs.readdirSync(out).map((d) => path.join(out, d))[0] ?? null : null);
      if (life.firstStepMs !== null) startupTimes.push(life.firstStepMs);
      if (life.startStep !== null) {
        base = life.startStep;
        for (const w of waiting) {
          w.resumed_at = life.startStep;
          w.steps_lost = (w.last_step_logged as number) >= 0 ? Math.max(0, (w.last_step_logged as number) - life.startStep) : 0;
          if (retried !== null) w.survived = false;
          else w.survived ??= true;
        }
        waiting = [];
      }
      if (life.end === 'hung') {
        failure ??= `a process made no progress for ${watchdogMs / 1000} s (${life.stderr.trim().split('\n').slice(-2).join(' | ')})`;
        break;
      }
      if (life.end === 'exited' && life.code !== 0) {
        const m = /--from-checkpoint (\d+)/.exec(life.stderr);
        const why = life.stderr.trim().split('\n').filter((l) => l.startsWith('basin:')).slice(-1)[0] ?? `exit code ${life.code}`;
        for (const w of waiting) {
          w.survived = false;
          w.note = why;
        }
        notes.push(`after kill ${done}: ${why}`);
        log(`  resume failed: ${why}`);
        if (m && retried === null) {
          fromCheckpoint = Number(m[1]);
          const bad = /checkpoint: step (\d+)/.exec(life.stderr);
          badStep = bad ? Number(bad[1]) : fromCheckpoint + CHECKPOINT_EVERY;
          continue;
        }
        failure ??= `a resume failed and could not be recovered: ${why}`;
        break;
      }
      if (retried !== null) continue; // the recovered process was only started to get past the bad checkpoint
      if (life.end === 'exited') {
        if (!last) failure ??= `the run completed before its ${kills} kills (${done} done)`;
        log(`  final resume from step ${life.startStep} completed in ${(life.ms / 1000).toFixed(1)} s`);
        break;
      }
      // Killed.
      const row: Record<string, unknown> = {
        kill: done + 1,
        kind: plan.kind,
        plan: plan.kind === 'startup' ? `${Math.round(plan.atMs)} ms after spawn` : plan.kind === 'none' ? '' : `step ${plan.step} + ${Math.round(plan.delayMs)} ms`,
        started_at: life.startStep,
        last_step_logged: life.lastStep,
        lived_ms: Math.round(life.ms),
        resumed_at: null,
        steps_lost: null,
        survived: null,
      };
      rows.push(row);
      waiting.push(row);
      log(`  kill ${String(done + 1).padStart(2)} (${plan.kind.padEnd(10)}): started at step ${life.startStep ?? '?'}, last step logged ${life.lastStep}, after ${(life.ms / 1000).toFixed(1)} s`);
    }
    const survived = rows.filter((r) => r.survived === true).length;
    const maxLost = Math.max(0, ...rows.map((r) => (r.steps_lost as number | null) ?? 0));

    // The files.
    const check = runDir ? await checkRunFolder(runDir) : null;
    const finalStep = totalSteps;
    const ck = (dir: string) => path.join(dir, 'checkpoints', `step-${finalStep}.safetensors`);
    const opt = (dir: string) => path.join(dir, 'checkpoints', `step-${finalStep}.opt.safetensors`);
    let deterministic: boolean | null = null;
    let refDiff: number | null = null;
    let weightsEqual: boolean | null = null;
    let optimizerEqual: boolean | null = null;
    let maxWeightDiff: number | null = null;
    try {
      const r0 = await readTensors(ck(refs[0]));
      const between = compareTensors(r0, await readTensors(ck(refs[1])));
      refDiff = between.maxAbsDiff;
      deterministic = between.equal && compareTensors(await readTensors(opt(refs[0])), await readTensors(opt(refs[1]))).equal;
      if (runDir && fs.existsSync(ck(runDir))) {
        const w = compareTensors(await readTensors(ck(runDir)), r0);
        weightsEqual = w.equal;
        maxWeightDiff = w.maxAbsDiff;
        optimizerEqual = compareTensors(await readTensors(opt(runDir)), await readTensors(opt(refs[0]))).equal;
      }
    } catch (e) {
      failure ??= `comparing final checkpoints: ${(e as Error).message}`;
    }
    const corruptFiles = check ? check.corrupt.length : null;
    const report = {
      bench: 'kill-resume',
      when: new Date().toISOString(),
      commit: gitCommit(),
      setup: {
        kills,
        total_steps: totalSteps,
        checkpoint_every: CHECKPOINT_EVERY,
        stats_every: 5,
        log_every: 1,
        seed: SEED,
        model: 'transformer vocab 64, d_model 32, 2 blocks, 4 heads, seq 16, batch 32, dropout 0; AdamW, cosine schedule, clip 1.0',
        process: 'node bin/basin.js train <config> --resume <run> --json, killed with SIGKILL',
      },
      rows,
      files: check
        ? {
            checked: check.files,
            corrupt: check.corrupt,
            stray: check.strayTemp,
            stats_frames: check.statsFrames,
            metrics_rows: check.metricsRows,
            metrics_duplicate_steps: check.metricsDuplicateSteps,
            final_status: check.status,
          }
        : null,
      final: {
        deterministic_uninterrupted: deterministic,
        weights_equal_uninterrupted: weightsEqual,
        optimizer_state_equal_uninterrupted: optimizerEqual,
        max_abs_weight_diff: maxWeightDiff,
        max_abs_weight_diff_between_uninterrupted: refDiff,
        nondeterminism:
          'kernels/embedding.wgsl adds gradients with an atomic compare-exchange loop (no f32 atomics in WGSL): rows that share a token ' +
          'are summed in scheduling order, so two identical runs differ in the last bits from the first step with repeated tokens, and grow apart',
      },
      ...(notes.length ? { notes } : {}),
      ...(failure ? { why: failure } : {}),
      headline: {
        kills_survived: survived,
        kills,
        corrupt_files: corruptFiles,
        max_steps_lost: maxLost,
        max_steps_lost_allowed: CHECKPOINT_EVERY,
        final_weights_bitwise_equal: weightsEqual,
        max_abs_weight_diff_vs_uninterrupted: maxWeightDiff,
        max_abs_weight_diff_uninterrupted_twice: refDiff,
      },
    };
    return report;
  } finally {
    if (!process.env.BASIN_KEEP_BENCH) fs.rmSync(work, { recursive: true, force: true });
    else log(`kill-resume: kept ${work}`);
  }
}

/** The human table of a kill-resume report. */
export function formatKillResumeReport(report: object): string {
  const r = report as {
    setup: { kills: number; total_steps: number; checkpoint_every: number };
    rows: { kill: number; kind: string; plan: string; started_at: number | null; last_step_logged: number; resumed_at: number | null; steps_lost: number | null; lived_ms: number; survived: boolean | null }[];
    notes?: string[];
    files: { checked: number; corrupt: { file: string; problem: string }[]; stray: string[]; stats_frames: number; metrics_rows: number; metrics_duplicate_steps: number; final_status: string | null } | null;
    final: {
      deterministic_uninterrupted: boolean | null;
      weights_equal_uninterrupted: boolean | null;
      optimizer_state_equal_uninterrupted: boolean | null;
      max_abs_weight_diff: number | null;
      max_abs_weight_diff_between_uninterrupted: number | null;
    };
    headline: Record<string, unknown>;
    why?: string;
    commit: string | null;
  };
  const out: string[] = [];
  out.push(`kill-resume: ${r.setup.kills} SIGKILLs during one ${r.setup.total_steps}-step run (checkpoint every ${r.setup.checkpoint_every} steps), commit ${r.commit ?? 'n/a'}`);
  out.push('');
  out.push(`${'kill'.padStart(4)}  ${'kind'.padEnd(10)} ${'plan'.padEnd(22)} ${'from'.padStart(5)} ${'last'.padStart(5)} ${'resumed'.padStart(8)} ${'lost'.padStart(5)} ${'lived s'.padStart(8)}  survived`);
  for (const x of r.rows) {
    out.push(
      `${String(x.kill).padStart(4)}  ${x.kind.padEnd(10)} ${x.plan.padEnd(22)} ${String(x.started_at ?? '?').padStart(5)} ${String(x.last_step_logged).padStart(5)} ` +
        `${String(x.resumed_at ?? 'n/a').padStart(8)} ${String(x.steps_lost ?? 'n/a').padStart(5)} ${(x.lived_ms / 1000).toFixed(1).padStart(8)}  ${x.survived === null ? 'n/a' : x.survived ? 'yes' : 'NO'}`,
    );
  }
  out.push('');
  if (r.files) {
    out.push(
      `files: ${r.files.checked} checked, ${r.files.corrupt.length} corrupt${r.files.corrupt.length ? ` (${r.files.corrupt.map((c) => `${c.file}: ${c.problem}`).join('; ')})` : ''}; ` +
        `stats.bin ${r.files.stats_frames} frames; metrics.jsonl ${r.files.metrics_rows} rows (${r.files.metrics_duplicate_steps} repeated steps: redone after kills); ` +
        `stray files ${r.files.stray.length ? r.files.stray.join(', ') : 'none'}; run.json status ${r.files.final_status ?? 'n/a'}`,
    );
  }
  out.push(
    `final checkpoint vs an uninterrupted run: weights ${r.final.weights_equal_uninterrupted === null ? 'n/a' : r.final.weights_equal_uninterrupted ? 'bit for bit equal' : `differ (max |Δ| ${r.final.max_abs_weight_diff})`}, ` +
      `optimizer state ${r.final.optimizer_state_equal_uninterrupted === null ? 'n/a' : r.final.optimizer_state_equal_uninterrupted ? 'equal' : 'differs'}; ` +
      `two uninterrupted runs ${r.final.deterministic_uninterrupted === null ? 'n/a' : r.final.deterministic_uninterrupted ? 'are bit for bit equal (deterministic)' : `differ by up to ${r.final.max_abs_weight_diff_between_uninterrupted} (the engine is not deterministic: atomic float adds in the embedding backward)`}`,
  );
  for (const n of r.notes ?? []) out.push(`note: ${n}`);
  if (r.why) out.push(`FAILED: ${r.why}`);
  out.push('');
  out.push(`headline: ${Object.entries(r.headline).map(([k, v]) => `${k} ${v === null ? 'n/a' : String(v)}`).join(', ')}`);
  return out.join('\n');
}
