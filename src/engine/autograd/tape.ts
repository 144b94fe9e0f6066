// Reverse-mode autograd. Every op that has an input requiring grad attaches a GradFn to its output (the tape is
// the graph of GradFns); backward() walks it in reverse topological order. Leaf gradients accumulate into
// `tensor.grad`, which for parameters is a view into the flat gradient buffer (optim/ reads it from there).
import { axpbyInPlace, clone, ones, zeros } from '../ops/basic';
import { GradFn, ShapeError, Tensor, fmtShape, gradEnabled, keep, noGrad } from '../tensor/tensor';

/** True when an op over these inputs must record its backward. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return gradEnabled() && inputs.some((t) => t?.requiresGrad);
}

/**
 * Attach the backward of an op to its output. `backward` receives the output's gradient and returns one
 * gradient per input, or null for inputs that take none (integer indices, constants).
 */
export function record(out: Tensor, name: string, inputs: readonly Tensor[], backward: (g: Tensor) => (Tensor | null)[]): Tensor {
  if (!needsGrad(...inputs)) return out;
  out.requiresGrad = true;
  out.gradFn = { name, inputs, backward } satisfies GradFn;
  return out;
}

/** Backpropagate from `root` (a scalar loss, or any tensor with `grad` of its shape). */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new Error('backward(): the tensor does not require grad (did you run inside noGrad, or freeze every parameter?)');
  if (!grad && root.size !== 1) throw new ShapeError(`backward() without a gradient needs a scalar, got ${fmtShape(root.shape)}`);
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>();
  // Backward functions may pass one gradient tensor on to several inputs (add, reshape): accumulate in place
  // only into tensors made here for that purpose, never into one another node may still hold.
  const owned = new Set<Tensor>();
  // How many pending entries of `grads` hold each gradient tensor: a node's gradient is disposed as soon as its
  // backward has run and no other node still holds it, so a step's peak memory holds a few gradients at a time,
  // not all of them (the pool hands the memory to the next gradient within the same step).
  const holders = new Map<Tensor, number>();
  const hold = (t: Tensor, g: Tensor) => {
    grads.set(t, g);
    holders.set(g, (holders.get(g) ?? 0) + 1);
  };
  const drop = (t: Tensor): Tensor | undefined => {
    const g = grads.get(t);
    if (!g) return undefined;
    grads.delete(t);
    holders.set(g, holders.get(g)! - 1);
    return g;
  };
  const seed = grad ?? ones(root.rt, root.shape);
  noGrad(() => {
    hold(root, seed);
    for (const t of order) {
      const g = drop(t);
      if (!g) continue;
      const fn = t.gradFn;
      if (!fn) accumulateLeaf(t, g);
      else {
        const inGrads = fn.backward(g);
        const consumed: Tensor[] = [];
        fn.inputs.forEach((input, i) => {
          const gi = inGrads[i];
          if (!gi || !input.requiresGrad) return;
          if (gi.size !== input.size) {
            throw new ShapeError(`${fn.name} backward: gradient ${fmtShape(gi.shape)} for input ${fmtShape(input.shape)}`);
          }
          const prev = grads.get(input);
          if (prev) {
            if (owned.has(prev)) axpbyInPlace(prev, gi, 1, 1);
            else {
              const sum = axpbyInPlace(clone(prev), gi, 1, 1);
              owned.add(sum);
              drop(input);
              consumed.push(prev);
              hold(input, sum);
            }
            consumed.push(gi);
          } else hold(input, gi.shape.length === input.shape.length ? gi : gi.reshape(input.shape));
        });
        // After the loop: one gradient tensor may be returned for several inputs.
        for (const x of consumed) if (x !== g) release(x);
      }
      if (g !== grad) release(g);
    }
  });

  /** Dispose a gradient made during this backward once nothing pending holds it (views keep their storage). */
  function release(x: Tensor): void {
    if ((holders.get(x) ?? 0) > 0 || x === grad) return;
    holders.delete(x);
    x.dispose();
  }
}

/**
 * For an op whose backward ADDS its gradient into a buffer (the embedding's scatter-add): the leaf gradient to
 * add into directly, or null when t is not a leaf (or is frozen) and the op must return its gradient as usual.
 * Call it only from a backward closure, and return null for that input when the sink was used.
 *
 * Why this is correct: backward() sums every gradient that reaches a leaf and then adds the sum into t.grad
 * (accumulateLeaf); sums commute, so adding one contribution straight into t.grad at any moment of the backward
 * pass gives the same result. It spares a dense temporary of t's size and the pass that adds it, which is what
 * an embedding table larger than one binding needs. A leaf without a gradient yet gets a zeroed one, kept like
 * the one accumulateLeaf would make.
 */
export function leafGradSink(t: Tensor): Tensor | null {
  if (t.gradFn || !t.requiresGrad || t.frozen) return null;
  if (!t.grad) t.grad = keep(zeros(t.rt, t.shape));
  return t.grad;
}

function accumulateLeaf(t: Tensor, g: Tensor): void {
  if (t.frozen) return;
  if (t.grad) axpbyInPlace(t.grad, g, 1, 1);
  else t.grad = keep(clone(g.reshape(t.shape)));
}

function topoOrder(root: Tensor): Tensor[] {
  // Iterative DFS (deep transformer graphs would overflow a recursive one); result is reverse post-order.
  const post: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      post.push(t);
    }
  }
  return post.reverse();
}
