// Model factories by config name. The entries (names, parameters, docs, what each reads) are in
// src/files/registry/models.ts; TypeScript checks that every entry has a factory here and nothing else does.
import { modelRegistry, type ModelConfig, type ModelEntry } from '../../files/registry/models';
import { MlpClassifier, Model, TransformerLM } from './models';
import { SASRec } from './sasrec';

type Factories = { [N in ModelConfig['type']]: (spec: Extract<ModelConfig, { type: N }>, seed: number) => Model };

const FACTORIES: Factories = {
  transformer: (spec, seed) => new TransformerLM(spec, seed),
  mlp: (spec, seed) => new MlpClassifier(spec, seed),
  sasrec: (spec, seed) => new SASRec(spec, seed),
};

/** The model a config section describes (unknown names throw, listing the known ones). */
export function buildModel(spec: ModelConfig, seed: number): Model {
  modelRegistry.get(spec.type);
  return (FACTORIES[spec.type] as (s: ModelConfig, seed: number) => Model)(spec, seed);
}

export function modelEntry(name: string): ModelEntry {
  return modelRegistry.get(name);
}
