import * as assert from 'node:assert/strict';
import {
  evaluateGradient,
  evaluateSetting,
  filterMatches,
  layerT,
  layerTemplate,
  nonLayerPlace,
  renameLayer,
  resolveParam,
  resolveParams,
  tensorLayer,
  type ParamSetting,
} from '../../src/files/merge/params';
import { ties, dareTies } from '../../src/files/registry/merge-methods';

const close = (a: number | boolean | string | undefined, b: number, eps = 1e-12) => assert.ok(typeof a === 'number' && Math.abs(a - b) <= eps, `${String(a)} ≉ ${b}`);

describe('merge parameters (src/files/merge/params.ts, mergekit semantics)', () => {
  describe('gradients', () => {
    it('interpolates a numeric list linearly at s = t·(n − 1), exact at the knots', () => {
      const g = [0, 0.5, 0.3, 0.7, 1];
      close(evaluateGradient(g, 0), 0);
      close(evaluateGradient(g, 1), 1);
      close(evaluateGradient(g, 0.25), 0.5); // knot 1
      close(evaluateGradient(g, 0.125), 0.25); // halfway between knots 0 and 1
      close(evaluateGradient(g, 0.375), 0.4); // halfway between 0.5 and 0.3
      close(evaluateGradient(g, 0.9), 0.7 + 0.6 * 0.3, 1e-12); // s = 3.6
      // every t gives a value between its two knots
      for (let i = 0; i <= 100; i++) {
        const t = i / 100;
        const s = t * 4;
        const lo = Math.min(g[Math.floor(s)], g[Math.min(4, Math.floor(s) + 1)]);
        const hi = Math.max(g[Math.floor(s)], g[Math.min(4, Math.floor(s) + 1)]);
        const v = evaluateGradient(g, t) as number;
        assert.ok(v >= lo - 1e-15 && v <= hi + 1e-15, `t=${t}: ${v} outside [${lo}, ${hi}]`);
      }
    });

    it('one value is a constant; t is clamped to [0, 1]; an empty list gives nothing', () => {
      close(evaluateGradient([0.3], 0.7), 0.3);
      close(evaluateGradient([1, 2], -5), 1);
      close(evaluateGradient([1, 2], 7), 2);
      close(evaluateGradient([1, 2], NaN), 1);
      assert.equal(evaluateGradient([], 0.5), undefined);
    });

    it('non-numeric lists step: v[⌊t·(n − 1)⌋]', () => {
      assert.equal(evaluateGradient([true, false], 0.99), true);
      assert.equal(evaluateGradient([true, false], 1), false);
      assert.equal(evaluateGradient(['a', 'b', 'c'], 0.5), 'b');
    });

    it('layer t: offset / (count − 1), and 1 for a one-layer slice (mergekit plan_slice)', () => {
      assert.equal(layerT(0, 5), 0);
      assert.equal(layerT(4, 5), 1);
      assert.equal(layerT(1, 3), 0.5);
      assert.equal(layerT(0, 1), 1);
    });
  });

  describe('filters', () => {
    it('a filter is a substring; none, null or "*" match everything', () => {
      assert.ok(filterMatches('attn', 'blocks.0.attn.q.weight'));
      assert.ok(!filterMatches('mlp', 'blocks.0.attn.q.weight'));
      assert.ok(filterMatches(undefined, 'x') && filterMatches(null, 'x') && filterMatches('*', 'x'));
      assert.ok(filterMatches('', 'x'));
    });

    it('the first matching entry wins; no match gives undefined (the next level is asked)', () => {
      const s: ParamSetting = [
        { filter: 'attn', value: 0.1 },
        { filter: 'blocks.0', value: 0.2 },
        { value: 0.3 },
      ];
      close(evaluateSetting(s, 'blocks.0.attn.q.weight', 0), 0.1);
      close(evaluateSetting(s, 'blocks.0.mlp.fc.weight', 0), 0.2);
      close(evaluateSetting(s, 'head.weight', 0), 0.3);
      const noFallback: ParamSetting = [{ filter: 'attn', value: 0.1 }];
      assert.equal(evaluateSetting(noFallback, 'head.weight', 0), undefined);
      // a single conditional (not in a list) works the same
      assert.equal(evaluateSetting({ filter: 'mlp', value: 2 }, 'blocks.1.attn', 0), undefined);
      close(evaluateSetting({ filter: 'mlp', value: 2 }, 'blocks.1.mlp', 0), 2);
    });

    it('a filter value may be a gradient, read at the tensor’s t', () => {
      const s: ParamSetting = [{ filter: 'self_attn', value: [0, 1] }, { value: 0.5 }];
      close(evaluateSetting(s, 'model.layers.3.self_attn.q_proj.weight', 0.25), 0.25);
      close(evaluateSetting(s, 'model.layers.3.mlp.up_proj.weight', 0.25), 0.5);
    });
  });

  describe('precedence', () => {
    const levels = {
      source: { weight: [{ filter: 'attn', value: 3 }] } as Record<string, ParamSetting>,
      slice: { weight: 2, density: [{ filter: 'mlp', value: 0.4 }] } as Record<string, ParamSetting>,
      global: { weight: 1, density: 0.9, lambda: 0.5 } as Record<string, ParamSetting>,
    };

    it('source > slice > global, a filter miss falling through to the next level', () => {
      close(resolveParam('weight', levels, 'blocks.0.attn.q', 0), 3);
      close(resolveParam('weight', levels, 'blocks.0.mlp.fc', 0), 2);
      close(resolveParam('density', levels, 'blocks.0.mlp.fc', 0), 0.4);
      close(resolveParam('density', levels, 'blocks.0.attn.q', 0), 0.9);
      assert.equal(resolveParam('gamma', levels, 'x', 0), undefined);
    });

    it('a global (non-per-model) parameter skips the source level', () => {
      const l = { source: { lambda: 7 } as Record<string, ParamSetting>, global: { lambda: 0.5 } as Record<string, ParamSetting> };
      close(resolveParam('lambda', l, 'x', 0, false), 0.5);
      close(resolveParam('lambda', l, 'x', 0, true), 7);
    });

    it('resolveParams: defaults fill the gaps; perModel and global parameters are split by the registry', () => {
      const perModel = resolveParams(ties.params, 'perModel', { source: { density: 0.3 } }, 'blocks.0.attn.q', 0);
      assert.deepEqual(perModel, { weight: 1, density: 0.3 });
      const global = resolveParams(ties.params, 'global', { global: { lambda: 0.8 } }, 'blocks.0.attn.q', 0);
      assert.deepEqual(global, { lambda: 0.8, normalize: true });
      // an integer parameter is rounded (a filter could give 2.6 only through a gradient, which the loader refuses;
      // rounding is the defensive default)
      const g = resolveParams(dareTies.params, 'global', { global: { seed: 2.6 } }, 'x', 0);
      assert.equal(g.seed, 3);
    });
  });

  describe('layer indices', () => {
    it('finds the number after blocks. / layers.', () => {
      assert.deepEqual(tensorLayer('blocks.12.attn.q.weight'), { index: 12, start: 7, end: 9 });
      assert.equal(tensorLayer('model.layers.3.self_attn.q_proj.weight')?.index, 3);
      assert.equal(tensorLayer('layers.0.weight')?.index, 0);
      assert.equal(tensorLayer('layers.7')?.index, 7);
      assert.equal(tensorLayer('tok.weight'), null);
      assert.equal(tensorLayer('myblocks.3.weight'), null);
      assert.equal(tensorLayer('blocks.x.weight'), null);
      assert.equal(tensorLayer('blocks.01.weight'), null);
      assert.equal(tensorLayer('blocks.3x.weight'), null);
    });

    it('renames a layer tensor and makes templates', () => {
      assert.equal(renameLayer('blocks.12.attn.q.weight', 3), 'blocks.3.attn.q.weight');
      assert.equal(renameLayer('model.layers.0.mlp.up_proj.weight', 31), 'model.layers.31.mlp.up_proj.weight');
      assert.equal(layerTemplate('blocks.5.ln1.bias'), 'blocks.{}.ln1.bias');
      assert.equal(layerTemplate('head.weight'), null);
      assert.throws(() => renameLayer('head.weight', 1), /no layer index/);
    });

    it('places tensors outside the layers: embeddings before (t = 0), the rest after (t = 1)', () => {
      for (const n of ['tok.weight', 'pos.weight', 'model.embed_tokens.weight', 'transformer.wte.weight', 'transformer.wpe.weight']) assert.equal(nonLayerPlace(n), 'pre', n);
      for (const n of ['ln_f.weight', 'head.weight', 'head.bias', 'lm_head.weight', 'model.norm.weight']) assert.equal(nonLayerPlace(n), 'post', n);
    });
  });
});
