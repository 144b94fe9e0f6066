// `basin study`'s --experts-only: refused without --out, and on a study other than merge, before any work.
import * as assert from 'node:assert/strict';
import { studyCommand } from '../../src/cli/study';

describe('basin study --experts-only', () => {
  it('needs --out (the folder to keep the experts in)', async () => {
    await assert.rejects(studyCommand('merge', { expertsOnly: true }), /study merge --experts-only: give --out <dir>/);
  });
  it('belongs to the merge study only', async () => {
    await assert.rejects(studyCommand('prune', { expertsOnly: true, out: '/nonexistent' }), /--experts-only is an option of "study merge", not of "study prune"/);
  });
});
