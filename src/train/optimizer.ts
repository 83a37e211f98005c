import * as tf from '@tensorflow/tfjs-core';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Saved optimizer state: the update count and both moment estimates per variable, in order. */
export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

/**
 * AdamW with decoupled weight decay, as torch.optim.AdamW: p <- p * (1 - lr * wd), then
 * p <- p - lr * m_hat / (sqrt(v_hat) + eps). The moments are tensors on the backend; the
 * learning rate is passed per step (the schedule lives outside).
 */
export class AdamW {
  readonly opts: AdamWOptions;
  step = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];

  constructor(
    readonly vars: tf.Variable[],
    opts: Partial<AdamWOptions> = {},
  ) {
    this.opts = { ...ADAMW_DEFAULTS, ...opts };
    this.m = vars.map((x) => tf.variable(tf.zerosLike(x), false));
    this.v = vars.map((x) => tf.variable(tf.zerosLike(x), false));
  }

  /** One update with gradients aligned with `vars`. */
  apply(grads: readonly tf.Tensor[], lr: number): void {
    if (grads.length !== this.vars.length) throw new Error(`AdamW: ${grads.length} gradients for ${this.vars.length} variables`);
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.opts;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    tf.tidy(() => {
      for (let i = 0; i < this.vars.length; i++) {
        const g = grads[i]!;
        const p = this.vars[i]!;
        const m = tf.add(tf.mul(this.m[i]!, beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.v[i]!, beta2), tf.mul(tf.square(g), 1 - beta2));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
        const decayed = weightDecay ? tf.mul(p, 1 - lr * weightDecay) : p;
        const upd = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        p.assign(tf.sub(decayed, tf.mul(upd, lr)));
      }
    });
  }

  state(): AdamWState {
    return {
      step: this.step,
      m: this.m.map((x) => x.dataSync() as Float32Array),
      v: this.v.map((x) => x.dataSync() as Float32Array),
    };
  }

  load(state: AdamWState): void {
    if (state.m.length !== this.vars.length || state.v.length !== this.vars.length) {
      throw new Error(`optimizer state holds ${state.m.length} moments for ${this.vars.length} variables`);
    }
    this.step = state.step;
    for (let i = 0; i < this.vars.length; i++) {
      const shape = this.vars[i]!.shape;
      this.m[i]!.assign(tf.tensor(state.m[i]!, shape));
      this.v[i]!.assign(tf.tensor(state.v[i]!, shape));
    }
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/** Learning-rate schedule: linear warm-up to `lr` over `warmupSteps`, then linear decay (or constant). */
export interface ScheduleOptions {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  kind: 'linear' | 'constant';
}

/**
 * The learning rate of update number `t` (1-based): t / warmup * lr during warm-up, then
 * decaying linearly to 0 at totalSteps (FiD's and transformers' linear schedule, shifted so
 * that the first update does not use a zero rate).
 */
export function learningRate(s: ScheduleOptions, t: number): number {
  if (s.warmupSteps > 0 && t <= s.warmupSteps) return (s.lr * t) / s.warmupSteps;
  if (s.kind === 'constant') return s.lr;
  const rest = Math.max(1, s.totalSteps - s.warmupSteps);
  return s.lr * Math.max(0, (s.totalSteps - t) / rest + 1 / rest);
}

/**
 * torch.nn.utils.clip_grad_norm_: scales all gradients by max_norm / (norm + 1e-6) when the
 * global L2 norm exceeds max_norm. Returns the norm before clipping (non-finite if any
 * gradient is) and the gradients to apply (new tensors when clipped).
 */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { norm: number; grads: tf.Tensor[] } {
  const sq = tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
  const norm = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  if (!(maxNorm > 0) || !Number.isFinite(norm) || norm <= maxNorm) return { norm, grads: [...grads] };
  const coef = maxNorm / (norm + 1e-6);
  return { norm, grads: grads.map((g) => tf.mul(g, coef)) };
}
