// The training loop shared by the CLI and the worker: forward, loss, backward, clip, optimizer step — recorded
// on the GPU with no readback inside the step; loss and gradient norms are read back every `logEvery` steps.
// Checkpoints (weights + optimizer state) are written atomically so a cancelled or killed job resumes from the
// last one with the same next batch.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward } from '../autograd/tape';
import type { Runtime } from '../gpu/runtime';
import { makeLoss } from '../loss/registry';
import type { Model, ModelSpec } from '../nn/models';
import { buildModel } from '../nn/registry';
import type { Optimizer } from '../optim/optimizer';
import { ParameterStore } from '../optim/params';
import { makeLrSchedule, makeOptimizer as makeRegisteredOptimizer } from '../optim/registry';
import type { LrSchedule } from '../optim/schedule';
import { writeSafetensors } from '../../files/safetensors';
import { noGrad, tidy } from '../tensor/tensor';
import type { TrainConfig } from '../../files/config/schema';
import { RunFolder, openRun, type RunLineage } from '../../files/run-record';
import { removeStaleTempFiles } from '../../files/atomic';
import { Dropout } from '../nn/layers';
import { LayerStatsCollector, statsCheckpoint, truncateStatsFile } from '../stats/layer-stats';
import { STATS_FILE } from '../../protocol/stats';
import { TrainingData, buildTrainingData } from './data-source';
import { evaluate, evaluateTest, hasTestSplit, EvalMetrics } from './evaluate';
import { CheckpointMismatchError, loadCheckpoint, loadWeights, saveCheckpoint } from './checkpoint';
import { forwardBatch } from './forward';
import { ParameterGlobError, applyFrozen, frozenAt, initFromCheckpoint, planFreeze, resolveInitSource, type InitReport } from './fine-tune';
import { configFieldError, resolveConfigPath } from '../../files/config/load';
import { attachLora, loraFrozen, trainableCount, withoutLora, writeMergedCheckpoint, type LoraConfig, type LoraPlan } from './lora';
import { AdapterConfigError, adaptersFrozen, attachAdapters, withoutAdapters, type AdapterPlan, type AdaptersInput } from './adapters';
import { adaptersMetadata } from '../../files/adapter-checkpoint';
import { EarlyStopper } from './early-stopping';
import { EwcPenalty, resolveEwcSource } from './ewc';
import { MixedPrecision, scaleStopSubject, startPrecision, type PrecisionReport } from './mixed-precision';
import { checkTrainingFits, DeviceCapacityError, deviceCapacity } from './capacity';

/** The longest the training loop runs without letting cancellation and IPC through. */
const YIELD_MS = 200;

export interface StepLog {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Steps per second over the last logging interval. */
  stepsPerSec: number;
  time: number;
}

export interface TrainEvents {
  onStart?(info: { runDir: string; totalSteps: number; startStep: number; parameters: number; model: ModelSpec; init?: InitReport; frozen?: string[]; optimizer?: Optimizer; precision?: PrecisionReport; trainable?: number; adapters?: AdapterPlan }): void;
  onLog?(log: StepLog): void;
  onEval?(step: number, metrics: EvalMetrics): void;
  onCheckpoint?(step: number, file: string): void;
  /** A per-layer statistics frame (src/protocol/stats.ts), already appended to `<run>/stats.bin`; in step order. */
  onStats?(step: number, frame: Uint8Array): void;
}

export interface TrainOptions {
  rt: Runtime;
  config: TrainConfig;
  configPath?: string;
  /** Parent folder of run folders (default: config.output resolved against the config's folder). */
  outputDir?: string;
  /** Resume this run folder from its latest checkpoint. */
  resume?: string;
  /** With `resume`: the checkpoint step to resume from instead of the latest (when the latest is unreadable). */
  resumeStep?: number;
  signal?: AbortSignal;
  events?: TrainEvents;
}

export interface TrainResult {
  runDir: string;
  status: 'completed' | 'cancelled';
  steps: number;
  lastLoss: number;
  eval: EvalMetrics | null;
  chance: EvalMetrics | null;
  checkpoint: string | null;
  /** Set when early stopping ended the run (train.earlyStopping). */
  stopReason?: string;
  /** train.earlyStopping: the best evaluation (its step has a checkpoint). */
  best?: { step: number; metric: string; value: number };
  /** Data with an evaluation split: the final test metrics (also the metrics row `test_*`); absent otherwise. */
  test?: EvalMetrics | null;
  /** The step whose weights `test` scored: the best evaluation's with early stopping, else the last step. */
  testStep?: number;
}

export class NonFiniteError extends Error {
  constructor(
    readonly step: number,
    readonly layer: string | null,
    what: string,
    /** Where the run can continue from, or null when no checkpoint was written yet. */
    readonly checkpointStep: number | null = null,
    /** The step at which the trainer noticed (steps from `step` on were skipped by the optimizer, never applied). */
    readonly detectedAt: number = step,
  ) {
    const skipped = detectedAt > step ? ` Steps ${step}–${detectedAt} were skipped (the optimizer applies no update whose gradient is not finite).` : '';
    const ck = checkpointStep === null ? ' No checkpoint was written yet.' : ` The checkpoint of step ${checkpointStep} is intact.`;
    super(`training stopped: ${what} is not finite at step ${step}${layer ? ` (first non-finite gradient: ${layer})` : ''}.${skipped} Lower the learning rate or enable gradient clipping.${ck}`);
    this.name = 'NonFiniteError';
  }
}

/**
 * The checkpoint a resume would start from cannot be loaded (truncated, edited, written by another model or
 * optimizer, non-finite weights). Says so, names the earlier checkpoints and how to resume from one of them
 * (`--from-checkpoint N`; in VS Code, a choice). The message always contains "unreadable checkpoint".
 */
export class UnreadableCheckpointError extends Error {
  constructor(
    readonly runDir: string,
    readonly step: number,
    readonly reason: string,
    /** Earlier checkpoint steps, ascending. */
    readonly earlier: number[],
  ) {
    const prev = earlier.length ? earlier[earlier.length - 1] : null;
    super(
      `unreadable checkpoint: step ${step} of ${runDir} cannot be resumed from (${reason}).` +
        (prev === null
          ? ' There is no earlier checkpoint: start a new run.'
          : ` Earlier checkpoints: ${[...earlier].reverse().join(', ')}. Resume from step ${prev} with --from-checkpoint ${prev}.`),
    );
    this.name = 'UnreadableCheckpointError';
  }
}

/** The optimizer of a config (through the optimizer registry), with the config's gradient clipping. */
export function makeOptimizer(config: TrainConfig, store: ParameterStore): Optimizer {
  return makeRegisteredOptimizer(config.train.optimizer, { store, maxGradNorm: config.train.gradClip ?? 0 });
}

export function makeSchedule(config: TrainConfig, totalSteps: number): LrSchedule {
  return makeLrSchedule(config.train.schedule, config.train.optimizer.lr, totalSteps);
}

/** A model's spec is its config section (defaults applied by the loader). */
export function modelSpec(config: TrainConfig): ModelSpec {
  return config.model;
}

/** Build a model and its flat parameter store on the GPU (with LoRA when `lora` is given, bottleneck adapters when `adapters` is). */
export function materializeModel(
  rt: Runtime,
  spec: ModelSpec,
  seed: number,
  lora?: LoraConfig,
  adapters?: AdaptersInput,
): { model: Model; store: ParameterStore; lora: LoraPlan | null; adapters: AdapterPlan | null } {
  const model = buildModel(spec, seed);
  if (lora && adapters) throw new AdapterConfigError(['train', 'adapters'], 'train.adapters and train.lora cannot be combined: choose one fine-tuning mode');
  const plan = lora ? attachLora(model, lora, seed) : null;
  const adapterPlan = adapters ? attachAdapters(model, adapters, seed) : null;
  const store = new ParameterStore();
  for (const d of model.declarations()) store.add(d.name, d.shape, d.init, { decay: d.decay });
  store.materialize(rt);
  model.bindParameters((n) => store.get(n));
  return { model, store, lora: plan, adapters: adapterPlan };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { rt, config } = opts;
  const t = config.train;
  // A problem only the built model can reveal (a glob matching no parameter, a missing init checkpoint) is still
  // a config error: it names the file, line and field when the config came from a file.
  const asConfigError = (segs: (string | number)[], e: Error) => (opts.configPath ? configFieldError(opts.configPath, segs, e.message) : e);
  try {
    checkTrainingFits(config, deviceCapacity(rt)); // before the data is read or anything allocated
  } catch (e) {
    throw e instanceof DeviceCapacityError ? asConfigError(e.field, e) : e;
  }
  const data = await buildTrainingData(config, opts.configPath);
  const spec = modelSpec(config);
  let built: ReturnType<typeof materializeModel>;
  try {
    built = materializeModel(rt, spec, config.seed, t.lora, t.adapters);
  } catch (e) {
    throw e instanceof ParameterGlobError || e instanceof AdapterConfigError ? asConfigError(e.field, e) : e;
  }
  const { model, store, lora, adapters } = built;
  let freeze: ReturnType<typeof planFreeze>;
  try {
    freeze = planFreeze(store, t.freeze ?? [], t.unfreeze ?? []);
    // LoRA: the base model is frozen, only the adapters train (train.unfreeze can still release base tensors).
    if (lora) for (const n of loraFrozen(store)) freeze.frozen.add(n);
    if (adapters) for (const n of adaptersFrozen(store)) freeze.frozen.add(n); // likewise: only the adapters train
  } catch (e) {
    store.destroy();
    throw e instanceof ParameterGlobError ? asConfigError(e.field, e) : e;
  }
  const optimizer = makeOptimizer(config, store);
  const loss = makeLoss(config.train.loss);
  const totalSteps = data.totalSteps;
  const schedule = makeSchedule(config, totalSteps);
  let early: EarlyStopper | null = null;
  try {
    early = t.earlyStopping ? new EarlyStopper(t.earlyStopping) : null;
  } catch (e) {
    optimizer.destroy();
    store.destroy();
    throw asConfigError(['train', 'earlyStopping', 'metric'], e as Error);
  }
  // EWC: the previous task's weights and curvature, read once (a missing statistics file is a config error).
  let ewc: EwcPenalty | null = null;
  if (t.ewc) {
    try {
      const from = opts.configPath ? resolveConfigPath(opts.configPath, t.ewc.from) : path.resolve(t.ewc.from);
      ewc = await EwcPenalty.load(rt, store, await resolveEwcSource(from), t.ewc.lambda);
    } catch (e) {
      optimizer.destroy();
      store.destroy();
      throw asConfigError(['train', 'ewc', 'from'], e as Error);
    }
  }
  let stopReason: string | undefined;

  let run: RunFolder;
  let startStep = 0;
  let initReport: InitReport | undefined;
  if (opts.resume) {
    run = await openRun(opts.resume);
    const all = run.availableCheckpoints();
    const ck = opts.resumeStep === undefined ? all[all.length - 1] : all.find((c) => c.step === opts.resumeStep);
    if (opts.resumeStep !== undefined && !ck) {
      throw new Error(`${run.dir} has no checkpoint at step ${opts.resumeStep} (checkpoints: ${all.map((c) => c.step).join(', ') || 'none'})`);
    }
    if (ck) {
      try {
        await loadCheckpoint(path.join(run.dir, ck.path), store, optimizer);
      } catch (e) {
        const earlier = all.filter((c) => c.step < ck.step).map((c) => c.step);
        throw new UnreadableCheckpointError(run.dir, ck.step, (e as Error).message, earlier);
      }
      startStep = ck.step;
      // Resuming before the latest: the later checkpoints are set aside, so a later resume cannot pick them.
      await run.supersedeCheckpointsAfter(ck.step);
    }
    // What a killed process left past the checkpoint: metrics rows of the steps about to be replayed (they would
    // appear twice) and the temporary files of interrupted atomic writes.
    await run.truncateMetricsAfter(startStep);
    for (const d of [run.dir, run.checkpointsDir, run.statsDir]) await removeStaleTempFiles(d);
    // Dropout draws its mask from a per-call counter: continue the sequence where the run stopped (one call per
    // training step; evaluation does not draw), so a resumed run sees the masks an uninterrupted one would.
    for (const m of model.modules()) if (m instanceof Dropout) m.setCallCount(startStep);
    await run.resume();
  } else {
    const outputDir = opts.outputDir ?? path.resolve(opts.configPath ? path.dirname(opts.configPath) : process.cwd(), config.output ?? 'runs');
    let lineage: RunLineage = {};
    if (config.init) {
      const from = opts.configPath ? resolveConfigPath(opts.configPath, config.init.from) : path.resolve(config.init.from);
      let src: Awaited<ReturnType<typeof resolveInitSource>>;
      try {
        src = await resolveInitSource(from);
      } catch (e) {
        optimizer.destroy();
        store.destroy();
        throw asConfigError(['init', 'from'], e as Error);
      }
      try {
        // LoRA adapters are not in a base checkpoint: they keep their initialization (B = 0: the base's function).
        initReport = await initFromCheckpoint(src.file, lora ? withoutLora(store) : adapters ? withoutAdapters(store) : store, { partial: config.init.partial });
      } catch (e) {
        optimizer.destroy();
        store.destroy();
        // On init.from's line, with the way out when only some tensors differ (a new head, another vocabulary).
        if (e instanceof CheckpointMismatchError && e.mismatches) {
          throw asConfigError(['init', 'from'], new Error(`${e.message}; set init.partial: true to keep fresh weights for the tensors that do not fit`));
        }
        throw e;
      }
      // The base's own validation metrics, once: a fine-tune shows them beside its own at every evaluation.
      const base = await evaluate(rt, model, data, loss);
      lineage = { relation: 'fine-tune', parentCheckpoint: src.file, ...(src.runDir ? { parentRun: src.runDir } : {}), baseMetrics: prefixed('val', base) };
    }
    run = await RunFolder.create(outputDir, config.name, { config, configPath: opts.configPath, device: rt.gpu.info, lineage });
  }
  const baseMetrics = run.record.lineage.baseMetrics;
  // Per-layer statistics (src/engine/stats/layer-stats.ts): sampled on the GPU every statsEvery steps, at each
  // checkpoint step and at the last step; frames are read back asynchronously and appended to stats.bin in order.
  const statsFile = path.join(run.dir, STATS_FILE);
  if (opts.resume) await truncateStatsFile(statsFile, startStep); // drop frames past the checkpoint and a torn tail
  const statsEvery = t.statsEvery ?? 0;
  // A fine-tune's frames carry its task saliency: the base is read from its checkpoint on disk at each sample.
  const lineageNow = run.record.lineage;
  const statsBase = lineageNow.relation === 'fine-tune' && lineageNow.parentCheckpoint && fs.existsSync(lineageNow.parentCheckpoint) ? lineageNow.parentCheckpoint : null;
  const stats = statsEvery > 0 ? new LayerStatsCollector(rt, store, optimizer, { baseFile: statsBase }) : null;
  let statsChain: Promise<void> = Promise.resolve();
  let statsError: unknown = null;
  const queueStats = (step: number, frame: Promise<Uint8Array>) => {
    frame.catch(() => undefined); // handled below, in order; this only keeps Node from calling it unhandled meanwhile
    statsChain = statsChain
      .then(async () => {
        const bytes = await frame;
        if (statsError) return;
        await fs.promises.appendFile(statsFile, bytes);
        opts.events?.onStats?.(step, bytes);
      })
      .catch((e) => {
        statsError ??= e;
      });
  };
  const drainStats = async () => {
    await statsChain;
    if (statsError) throw statsError;
  };
  let frozenNow = frozenAt(freeze, startStep);
  applyFrozen(store, frozenNow);
  model.train();
  // train.precision: mixed gives the Linear layers f16 weight copies and scales the loss (./mixed-precision.ts).
  const { report: precision, mixed } = await startPrecision({ rt, train: t, model, store, optimizer, run, resumeWeights: opts.resume ? run.latestCheckpoint()?.path ?? null : null });
  opts.events?.onStart?.({ runDir: run.dir, totalSteps, startStep, parameters: store.parameterCount, model: spec, init: initReport, frozen: [...frozenNow], optimizer, precision, trainable: trainableCount(store), ...(adapters ? { adapters } : {}) });

  let lastLoss = NaN;
  let lastEval: EvalMetrics | null = null;
  let lastCheckpoint: string | null = run.latestCheckpoint()?.path ?? null;
  let lastCheckpointStep = startStep;
  let done = startStep;
  let intervalStart = performance.now();
  let intervalSteps = 0;
  const logEvery = Math.max(1, t.logEvery ?? 10);
  let status: TrainResult['status'] = 'completed';
  let lastYield = performance.now();

  // Resume with early stopping: its state is rebuilt from the evaluations recorded up to the checkpoint.
  if (early && opts.resume) early.replay(run.metricsPath, startStep);

  const checkpoint = async (step: number) => {
    // LoRA: the merged model file first; the checkpoint exists once its weights file (written last) does.
    if (lora) await writeMergedCheckpoint(run, step, store, lora);
    if (mixed) await mixed.save(run.dir, run.checkpointPath(step)); // the loss scale, before the weights
    // Adapters: their config goes into the checkpoint's metadata (eval and `basin eval` rebuild the model from it).
    const file = await saveCheckpoint(run, step, store, optimizer, lastEval ? prefixed('val', lastEval) : undefined, adapters ? adaptersMetadata(adapters.config) : undefined);
    if (stats) {
      await drainStats();
      if (stats.latest) {
        const { tensors, metadata } = statsCheckpoint(stats.latest);
        await fs.promises.mkdir(run.statsDir, { recursive: true });
        await writeSafetensors(path.join(run.dir, run.statsPath(step)), tensors, metadata);
      }
    }
    lastCheckpoint = file;
    lastCheckpointStep = step;
    opts.events?.onCheckpoint?.(step, path.join(run.dir, file));
  };

  try {
    for (let step = startStep + 1; step <= totalSteps; step++) {
      if (opts.signal?.aborted) {
        status = 'cancelled';
        break;
      }
      if (freeze.unfreeze.some((u) => u.step === step)) {
        frozenNow = frozenAt(freeze, step); // progressive unfreezing: these parameters train from this step on
        applyFrozen(store, frozenNow);
      }
      const lr = schedule(step);
      const batch = data.trainBatch(step);
      const wantLog = step % logEvery === 0 || step === totalSteps;
      const wantCheckpoint = (t.checkpointEvery && step % t.checkpointEvery === 0) || step === totalSteps;
      const wantStats = stats !== null && (step % statsEvery === 0 || step === totalSteps || !!wantCheckpoint);
      let lossRead: Promise<Float32Array | Int32Array | Uint32Array> | null = null;
      tidy(() => {
        const out = forwardBatch(rt, model, batch, { training: true, loss });
        // Everything frozen (progressive unfreezing before its first step): the loss is still logged.
        if (frozenNow.size < store.entries.length) backward(out.loss, mixed?.seed(out.loss));
        if (wantLog) lossRead = out.loss.toArray();
      });
      mixed?.unscale(); // the gradients arrive multiplied by the loss scale
      if (ewc && frozenNow.size < store.entries.length) ewc.addGradients(); // the penalty's gradient, before clipping
      if (wantStats) stats!.beforeStep();
      optimizer.step(lr);
      mixed?.afterStep(step);
      const normsRead = wantLog ? optimizer.gradNorms?.readAsync() : undefined;
      const scaleRead = wantLog ? mixed?.readAsync() : undefined;
      if (wantStats) queueStats(step, stats!.sample(step)); // reads the gradients: before they are zeroed
      store.zeroGrads();
      if (statsError) throw statsError;
      done = step;
      intervalSteps++;
      if (wantLog) {
        const [lossArr, norms, scale] = await Promise.all([lossRead!, normsRead, scaleRead]);
        const loss = lossArr[0];
        // The GPU latched the first non-finite step since the start (checked every step, read with the norms).
        const ckStep = lastCheckpoint !== null ? lastCheckpointStep : null;
        const bad = norms?.firstNonFiniteStep;
        if (bad) throw new NonFiniteError(bad.step, bad.tensor, mixed && scale ? scaleStopSubject(scale, mixed.scaler.opts.minScale) : 'the gradient', ckStep, step);
        // Mixed precision: a step skipped for an overflow is the loss scaler's business (it halved the scale).
        if (norms && !norms.finite && scale?.lastSkippedStep !== step) throw new NonFiniteError(step, norms.firstNonFinite(), 'the gradient', ckStep);
        if (!Number.isFinite(loss)) throw new NonFiniteError(step, null, 'the loss', ckStep);
        lastLoss = loss;
        const now = performance.now();
        const log: StepLog = { step, totalSteps, loss, lr, gradNorm: norms?.total ?? NaN, stepsPerSec: (intervalSteps * 1000) / (now - intervalStart), time: Date.now() };
        intervalStart = now;
        intervalSteps = 0;
        await run.appendMetrics({ step, time: log.time, loss, lr, gradNorm: log.gradNorm, stepsPerSec: log.stepsPerSec, ...(scale ? MixedPrecision.metrics(scale) : {}) });
        opts.events?.onLog?.(log);
      }
      if ((t.evalEvery && step % t.evalEvery === 0) || step === totalSteps) {
        lastEval = await evaluate(rt, model, data, loss);
        await run.appendMetrics({ step, time: Date.now(), ...prefixed('val', lastEval), ...(baseMetrics ? prefixed('base', baseMetrics) : {}) });
        opts.events?.onEval?.(step, lastEval);
        if (early) {
          const u = early.update(step, prefixed('val', lastEval));
          // The best weights are always on disk: an improvement is checkpointed even between checkpointEvery steps.
          if (u.improved && !wantCheckpoint) await checkpoint(step);
          if (u.stop) stopReason = early.reason(step);
        }
      }
      if (wantCheckpoint) await checkpoint(step);
      if (stopReason) break;
      // Let cancellation and IPC through at least every YIELD_MS (a macrotask costs microseconds; steps between
      // logging steps never wait on the GPU, so without this a Cancel could wait up to logEvery steps). Before
      // yielding, wait for the GPU to reach this step so that the queue never runs far ahead of a Cancel.
      if (performance.now() - lastYield >= YIELD_MS) {
        await rt.sync();
        await new Promise((r) => setImmediate(r));
        lastYield = performance.now();
      }
    }
    // A cancelled job keeps what it trained: one more checkpoint at the step it reached (small models write it
    // in well under a second; the previous checkpoint stays intact until the rename).
    if (status === 'cancelled' && done > lastCheckpointStep) await checkpoint(done);
    await drainStats();
    // Data with a test split (interactions' held-out targets, synthetic tasks' fresh sequences): scored once
    // (metrics row `test_*`). With early stopping, the
    // weights scored are the best evaluation's (its checkpoint), as a model selected on validation is reported;
    // otherwise the final weights. The row's step says which.
    let testEval: EvalMetrics | null = null;
    let testStep = done;
    if (status === 'completed' && hasTestSplit(data)) {
      if (early?.best && early.best.step !== done) {
        testStep = early.best.step;
        await loadWeights(path.join(run.dir, run.checkpointPath(testStep)), store);
      }
      testEval = await evaluateTest(rt, model, data, loss);
    }
    if (testEval) await run.appendMetrics({ step: testStep, time: Date.now(), ...prefixed('test', testEval) });
    await rt.sync();
    await run.update({ status, lastMetrics: { loss: lastLoss, ...(lastEval ? prefixed('val', lastEval) : {}), ...(testEval ? prefixed('test', testEval) : {}), ...(early ? early.summary(stopReason ?? null) : {}) } });
    return { runDir: run.dir, status, steps: done, lastLoss, eval: lastEval, chance: data.chance, checkpoint: lastCheckpoint, test: testEval, ...(testEval ? { testStep } : {}), ...(stopReason ? { stopReason } : {}), ...(early?.best ? { best: { step: early.best.step, metric: early.key, value: early.best.value } } : {}) };
  } catch (e) {
    await run.update({ status: 'failed', error: (e as Error).message }).catch(() => undefined);
    throw e;
  } finally {
    await statsChain; // never rejects (errors land in statsError); no frame is written after train() returns
    stats?.destroy();
    ewc?.destroy();
    mixed?.destroy();
    optimizer.destroy();
    store.destroy();
  }
}

function prefixed(prefix: string, m: EvalMetrics | Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) out[`${prefix}_${k}`] = v;
  return out;
}

export { forwardBatch };
export { noGrad };
export type { TrainingData };
