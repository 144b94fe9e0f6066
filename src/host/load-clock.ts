// The first module of the extension bundle to run (src/extension.ts imports it before anything else): the
// extension host's clock when the bundle's top-level code started, for `basin bench editor` (BasinApi.timing).
// The bundle's parse/compile happens before this line and is measured separately (the bench requires a copy).
export const loadStartMs = performance.now();
