// The merge files part (pure Node, no GPU): merge configs (mergekit YAML), parameter resolution, model files and
// the merge plan an executor runs. See each module's header.
export * from './config';
export * from './params';
export * from './model-files';
export * from './plan';
export { mergeConfigSchema, mergeSchemaFileText } from './schema';
