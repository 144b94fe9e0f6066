// Which files are Basin training configs: one definition for the loader, the editor's lenses, diagnostics,
// completion and commands. (package.json's static contributions — menus, activation events, jsonValidation —
// cannot import it; test/unit/config-files.test.ts checks that they say the same.)

/** A training config's file name: `*.basin.yaml`, `*.basin.yml` or `*.basin.json`. */
export const CONFIG_FILE_RE = /\.basin\.(ya?ml|json)$/i;
/** The YAML ones. */
export const YAML_CONFIG_FILE_RE = /\.basin\.ya?ml$/i;
/** The same as a workspace glob. */
export const CONFIG_FILE_GLOB = '**/*.basin.{yaml,yml,json}';
export const YAML_CONFIG_FILE_GLOB = '**/*.basin.{yaml,yml}';
/** For messages. */
export const CONFIG_FILE_WORDS = '*.basin.yaml, *.basin.yml or *.basin.json';

export function isConfigFile(fileName: string): boolean {
  return CONFIG_FILE_RE.test(fileName);
}
