// Which files are configs is defined once (src/files/config/config-files.ts); package.json's static contributions
// cannot import it, so this test checks that they say the same thing.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONFIG_FILE_GLOB, CONFIG_FILE_RE, isConfigFile } from '../../src/files/config/config-files';

const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8'));
const EXTENSIONS = ['yaml', 'yml', 'json'];

describe('config file names', () => {
  it('the regex and the glob agree', () => {
    for (const ext of EXTENSIONS) assert.ok(isConfigFile(`demo.basin.${ext}`) && CONFIG_FILE_GLOB.includes(ext), ext);
    for (const f of ['demo.yaml', 'demo.basin.txt', 'basin.yaml', 'demo.basin.yaml.bak']) assert.ok(!CONFIG_FILE_RE.test(f), f);
  });

  it("package.json activates on, validates and offers Train for every config file name", () => {
    for (const ext of EXTENSIONS) assert.ok(pkg.activationEvents.includes(`workspaceContains:**/*.basin.${ext}`), `activation on *.basin.${ext}`);
    const matches = [...pkg.contributes.jsonValidation, ...pkg.contributes.yamlValidation].flatMap((v: { fileMatch: string | string[] }) => [v.fileMatch].flat());
    for (const ext of EXTENSIONS) assert.ok(matches.includes(`*.basin.${ext}`), `schema for *.basin.${ext}`);
    const train = pkg.contributes.menus['editor/title'].find((m: { command: string }) => m.command === 'basin.trainFromConfig');
    const re = new RegExp(/resourceFilename =~ \/(.*)\/$/.exec(train.when)![1].replace(/\\\\/g, '\\'));
    for (const ext of EXTENSIONS) assert.ok(re.test(`demo.basin.${ext}`), `Train button on *.basin.${ext}`);
  });
});
