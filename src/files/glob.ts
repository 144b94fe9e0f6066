// Parameter-name globs, one rule everywhere a config names tensors (train.freeze/unfreeze, LoRA targets, prune
// targets): `*` matches any run of characters, dots included, `?` any one character, everything else is literal.
// So `blocks.*.attn.*` matches every attention parameter of every block (`blocks.0.attn.q.weight`), `*.bias` every bias.
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const c of glob) {
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else re += c.replace(/[\\^$+.()|{}[\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
