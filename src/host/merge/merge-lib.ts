// Everything the merge panel and commands need from the merge config machinery (yaml, ajv, the registry, the
// planner), as ONE module that the extension loads on first use (merge-panel.ts `loadMergeLib`): scripts/build.mjs
// bundles it to dist/merge-lib.js beside dist/extension.js, so activating the extension compiles none of it.
export { parseMergeConfig, validateMergeConfigText, isMergeConfigFile, referencedModels, ConfigError, formatDiagnostic, type MergeConfig } from '../../files/merge/config';
export { planMerge, MergePlanError, type MergePlan } from '../../files/merge/plan';
export { statisticsFor } from '../../files/merge/model-files';
export { MERGE_METHOD_ENTRIES, mergeMethodRegistry } from '../../files/registry/merge-methods';
export { buildGrid, editMergeYaml, notGridEditable, restOf, textDelta, MergeEditError, type GridModel, type MergeEdit } from './merge-model';
export { lastValidationMetrics, previewByLayer, runOfModel, saliencyCells } from './merge-source';
