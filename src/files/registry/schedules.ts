// Learning-rate schedules a config can name (`train.schedule.type`): metadata only; the functions are in
// src/engine/optim/schedule.ts, bound by name in src/engine/optim/registry.ts.
import { ConfigUnion, defineEntry, Registry } from './entry';

const warmup = (dflt: number) => ({ type: 'integer', minimum: 0, default: dflt, doc: 'Warmup steps (learning rate rising linearly from 0).' }) as const;

export const cosine = defineEntry({
  kind: 'schedule',
  name: 'cosine',
  title: 'Linear warmup, then cosine decay to `minLrRatio` × lr.',
  params: {
    warmup: warmup(50),
    minLrRatio: { type: 'number', minimum: 0, maximum: 1, default: 0.1, doc: 'Final learning rate as a fraction of the peak.' },
  },
});

export const constant = defineEntry({
  kind: 'schedule',
  name: 'constant',
  title: 'Linear warmup, then a constant learning rate.',
  params: { warmup: warmup(0) },
});

export const SCHEDULE_ENTRIES = [cosine, constant] as const;
export const scheduleRegistry = new Registry('schedule', SCHEDULE_ENTRIES);
export type ScheduleConfig = ConfigUnion<typeof SCHEDULE_ENTRIES>;
