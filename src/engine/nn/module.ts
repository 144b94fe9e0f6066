// nn modules: parameters are declared with hierarchical names (`blocks.0.attn.q.weight`) and initial values at
// construction, laid out by the ParameterStore in flat GPU buffers, then bound back to the modules as views.
import type { Tensor } from '../tensor/tensor';

export interface ParamDecl {
  name: string;
  shape: number[];
  init: Float32Array;
  /** Weight decay applies (matrices yes; biases, norms and embeddings' defaults decided by the module). */
  decay: boolean;
}

/** A module's handle on one of its parameters; `t` is valid once the model is bound to a store. */
export class Param {
  private tensor: Tensor | null = null;
  constructor(readonly decl: ParamDecl) {}

  get t(): Tensor {
    if (!this.tensor) throw new Error(`parameter ${this.decl.name} is not bound to GPU storage yet (call bindParameters)`);
    return this.tensor;
  }

  bind(t: Tensor): void {
    if (t.shape.join() !== this.decl.shape.join()) {
      throw new Error(`parameter ${this.decl.name}: bound tensor [${t.shape}] does not match declared [${this.decl.shape}]`);
    }
    this.tensor = t;
  }
}

export abstract class Module {
  private readonly ownParams = new Map<string, Param>();
  private readonly children = new Map<string, Module>();
  training = true;

  protected param(name: string, shape: number[], init: Float32Array, decay = shape.length >= 2): Param {
    const p = new Param({ name, shape, init, decay });
    this.ownParams.set(name, p);
    return p;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** This module and every descendant, depth first. */
  *modules(): Generator<Module> {
    yield this;
    for (const c of this.children.values()) yield* c.modules();
  }

  /** Every parameter with its full dotted name, in a stable order (declaration order, depth first). */
  namedParams(prefix = ''): [string, Param][] {
    const out: [string, Param][] = [];
    for (const [n, p] of this.ownParams) out.push([prefix + n, p]);
    for (const [n, c] of this.children) out.push(...c.namedParams(`${prefix}${n}.`));
    return out;
  }

  /** Declarations with full names, for the parameter store. */
  declarations(): ParamDecl[] {
    return this.namedParams().map(([name, p]) => ({ ...p.decl, name }));
  }

  /** Bind every parameter to its GPU view by full name. */
  bindParameters(lookup: (fullName: string) => Tensor): void {
    for (const [name, p] of this.namedParams()) p.bind(lookup(name));
  }

  /** Training mode (dropout on) or evaluation mode, recursively. */
  train(on = true): this {
    this.training = on;
    for (const c of this.children.values()) c.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }
}
