import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap, Tensor } from '@tensorflow/tfjs-core';

type NamedGradientMap = ReturnType<GradConfig['gradFunc']>;
import { parseEinsum } from './einsum.js';

/**
 * Gradient definitions for the kernels our models use, registered for every backend.
 *
 * The Node build of @tensorflow/tfjs-core (dist/tf-core.node.js, what `import
 * '@tensorflow/tfjs-core'` loads) registers NO gradients; upstream registers them in
 * dist/register_all_gradients.js, an ES module with extension-less imports that Node cannot load.
 * The @tensorflow/tfjs umbrella bundle registers upstream's set. registerGradients() keeps those
 * and adds or replaces:
 *  - BatchMatMul, Maximum, Minimum, SquaredDifference: the gradient of a broadcast input is
 *    summed back to that input's shape (upstream returns the broadcast shape and tf.grads throws
 *    "The gradient of input 'b' has shape ...").
 *  - Tile: any rank, one reshape + sum (upstream: rank <= 4, one slice + add per repetition).
 *  - GatherV2 with a negative axis (upstream mixes the raw and the parsed axis).
 *  - Cumsum along a non-last axis (upstream transposes the result, giving the wrong shape).
 *  - Comparisons and logical ops (Greater, Less, Equal, ...): zero gradients, so that a mask
 *    computed from a differentiable tensor (tf.where(tf.greater(x, 0), ...)) does not make
 *    tf.grads throw "gradient function not found for Greater".
 *  - Einsum (one or two operands, as tf.einsum allows) and StridedSlice: upstream has none.
 * Without the umbrella package the whole set below is registered, so training still works.
 * The definitions follow tfjs-core 4.22's src/gradients/*_grad.ts.
 */

const { backend_util, util } = tf;

/** Sums `g` (a gradient of broadcast shape) back down to `shape`. */
function reduceTo(g: Tensor, shape: number[]): Tensor {
  if (util.arraysEqual(g.shape, shape)) return g;
  const extra = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < extra || (shape[i - extra] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return tf.reshape(axes.length ? tf.sum(g, axes) : g, shape);
}

/** `shape` with the reduced `axes` set to 1. */
const keepDimsShape = (shape: number[], axes: number[]) => shape.map((d, i) => (axes.includes(i) ? 1 : d));

const f32 = (t: Tensor) => tf.cast(t, 'float32');

function unary(kernelName: string, grad: (dy: Tensor, x: Tensor, attrs: NamedAttrMap) => Tensor): GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => ({ x: () => grad(dy as Tensor, saved[0], attrs) }),
  };
}

function unaryOfOutput(kernelName: string, grad: (dy: Tensor, y: Tensor) => Tensor): GradConfig {
  return {
    kernelName,
    outputsToSave: [true],
    gradFunc: (dy, saved) => ({ x: () => grad(dy as Tensor, saved[0]) }),
  };
}

/** Elementwise binary op with broadcasting: da, db computed at the broadcast shape, then reduced. */
function binary(kernelName: string, grads: (dy: Tensor, a: Tensor, b: Tensor) => [() => Tensor, () => Tensor]): GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [a, b] = saved;
      const [da, db] = grads(dy as Tensor, a, b);
      return { a: () => reduceTo(da(), a.shape), b: () => reduceTo(db(), b.shape) };
    },
  };
}

function zeroUnary(kernelName: string): GradConfig {
  return { kernelName, inputsToSave: ['x'], gradFunc: (_dy, saved) => ({ x: () => tf.zerosLike(f32(saved[0])) }) };
}

function zeroBinary(kernelName: string): GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (_dy, saved) => ({ a: () => tf.zerosLike(f32(saved[0])), b: () => tf.zerosLike(f32(saved[1])) }),
  };
}

function minMaxGrad(dy: Tensor, y: Tensor, x: Tensor, axes: number[]): Tensor {
  const keep = backend_util.expandShapeToKeepDim;
  if (y.rank < x.rank) y = tf.reshape(y, keep(y.shape, axes));
  if (dy.rank < x.rank) dy = tf.reshape(dy, keep(dy.shape, axes));
  return tf.mul(dy, tf.cast(tf.equal(x, y), dy.dtype));
}

function gatherGrad(x: Tensor, indices: Tensor, dy: Tensor, axis: number): Tensor {
  const outer = x.shape.slice(0, axis);
  const inner = x.shape.slice(axis + 1);
  const n = indices.size;
  const values = tf.reshape(dy, [...outer, n, ...inner]);
  const flatIndices = tf.reshape(indices, [n]);
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const perm = [outer.length, ...range(0, outer.length), ...range(outer.length + 1, outer.length + 1 + inner.length)];
  const moved = util.arraysEqual(perm, range(0, perm.length)) ? values : tf.transpose(values, perm);
  const summed = tf.unsortedSegmentSum(moved, flatIndices as tf.Tensor1D, x.shape[axis]);
  const undo = backend_util.getUndoAxesPermutation(perm);
  return util.arraysEqual(undo, range(0, undo.length)) ? summed : tf.transpose(summed, undo);
}

function prodGrad(x: Tensor, dy: Tensor, axes: number[]): Tensor {
  const rank = x.rank;
  const perm = backend_util.getAxesPermutation(axes, rank);
  const px = perm != null ? tf.transpose(x, perm) : x;
  const kept = px.shape.slice(0, rank - axes.length);
  const flat = tf.reshape(px, [...kept, util.sizeFromShape(px.shape.slice(rank - axes.length))]);
  const last = kept.length;
  const edy = tf.reshape(dy, [...kept, 1]);
  const dx = tf.mul(tf.cumprod(flat, last, true, false), tf.cumprod(flat, last, true, true));
  const g = tf.reshape(tf.mul(edy, dx), px.shape);
  return perm != null ? tf.transpose(g, backend_util.getUndoAxesPermutation(perm)) : g;
}

/** d/dA of einsum(`${a},${b}->${c}`) = einsum(`${c},${b}->${a}`, dy, B), broadcast over labels only A has. */
function einsumOperandGrad(dy: Tensor, cLabels: string, own: string, other: { labels: string; t: Tensor } | null, ownShape: number[]): Tensor {
  const available = cLabels + (other ? other.labels : '');
  const kept = [...own].filter((l) => available.includes(l)).join('');
  let g: Tensor;
  if (other) {
    g = tf.einsum(`${cLabels},${other.labels}->${kept}`, dy, other.t);
  } else {
    g = tf.einsum(`${cLabels}->${kept}`, dy);
  }
  if (kept.length === own.length) return g;
  // Labels summed out inside this operand alone: the gradient is constant along them.
  const expanded = tf.reshape(g, [...own].map((l, i) => (kept.includes(l) ? ownShape[i] : 1)));
  return tf.broadcastTo(expanded, ownShape);
}

const GRADIENTS: GradConfig[] = [
  // Elementwise arithmetic.
  binary('Add', (dy) => [() => dy, () => dy]),
  binary('Sub', (dy) => [() => dy, () => tf.neg(dy)]),
  binary('Multiply', (dy, a, b) => [() => tf.mul(dy, f32(b)), () => tf.mul(dy, f32(a))]),
  binary('RealDiv', (dy, a, b) => [() => tf.div(dy, f32(b)), () => tf.neg(tf.div(tf.mul(dy, f32(a)), f32(tf.square(b))))]),
  binary('Maximum', (dy, a, b) => [() => tf.mul(dy, f32(tf.greaterEqual(a, b))), () => tf.mul(dy, f32(tf.less(a, b)))]),
  binary('Minimum', (dy, a, b) => [() => tf.mul(dy, f32(tf.lessEqual(a, b))), () => tf.mul(dy, f32(tf.greater(a, b)))]),
  binary('SquaredDifference', (dy, a, b) => [() => tf.mul(dy, tf.mul(2, tf.sub(a, b))), () => tf.mul(dy, tf.mul(2, tf.sub(b, a)))]),
  {
    kernelName: 'Pow',
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, saved) => {
      const [a, b, y] = saved;
      return {
        a: () => reduceTo(tf.mul(dy as Tensor, tf.mul(f32(b), tf.pow(a, tf.sub(f32(b), 1)))), a.shape),
        b: () => reduceTo(tf.mul(dy as Tensor, tf.mul(y, tf.where(tf.greater(a, 0), tf.log(a), tf.zerosLike(a)))), b.shape),
      };
    },
  },
  {
    kernelName: 'AddN',
    saveAllInputs: true,
    gradFunc: (dy, saved) => Object.fromEntries(saved.map((_, i) => [String(i), () => (dy as Tensor).clone()])),
  },
  { kernelName: 'Neg', gradFunc: (dy) => ({ x: () => tf.neg(dy as Tensor) }) },
  unary('Abs', (dy, x) => tf.mul(dy, tf.step(f32(x), -1))),
  unary('Square', (dy, x) => tf.mul(dy, tf.mul(f32(x), 2))),
  unary('Sqrt', (dy, x) => tf.div(dy, tf.mul(tf.sqrt(f32(x)), 2))),
  unary('Rsqrt', (dy, x) => tf.neg(tf.div(dy, tf.mul(tf.pow(x, 1.5), 2)))),
  unary('Reciprocal', (dy, x) => tf.div(dy, tf.neg(tf.square(x)))),
  unaryOfOutput('Exp', (dy, y) => tf.mul(dy, y)),
  unary('Expm1', (dy, x) => tf.mul(dy, tf.exp(x))),
  unary('Log', (dy, x) => tf.div(dy, f32(x))),
  unary('Log1p', (dy, x) => tf.div(dy, tf.add(x, 1))),
  unary('Erf', (dy, x) => tf.mul(dy, tf.mul(tf.exp(tf.neg(tf.square(x))), 2 / Math.sqrt(Math.PI)))),
  unary('Sin', (dy, x) => tf.mul(tf.cos(f32(x)), dy)),
  unary('Cos', (dy, x) => tf.mul(tf.neg(tf.sin(f32(x))), dy)),
  unaryOfOutput('Tanh', (dy, y) => tf.mul(tf.sub(1, tf.square(y)), dy)),
  unaryOfOutput('Sigmoid', (dy, y) => tf.mul(dy, tf.mul(y, tf.sub(1, y)))),
  unary('Softplus', (dy, x) => tf.mul(dy, tf.sigmoid(x))),
  unary('Relu', (dy, x) => tf.mul(dy, f32(tf.step(x)))),
  unary('Relu6', (dy, x) => tf.mul(dy, f32(tf.mul(tf.lessEqual(x, 6), tf.step(x))))),
  unary('LeakyRelu', (dy, x, attrs) => tf.where(tf.greater(x, 0), dy, tf.mul(dy, attrs.alpha as number))),
  unaryOfOutput('Elu', (dy, y) => tf.where(tf.greater(y, 0), dy, tf.mul(dy, tf.add(y, 1)))),
  unary('Selu', (dy, x) =>
    tf.where(tf.greater(x, 0), tf.mul(dy, backend_util.SELU_SCALE), tf.mul(tf.mul(dy, backend_util.SELU_SCALEALPHA), tf.exp(f32(x)))),
  ),
  unary('ClipByValue', (dy, x, attrs) =>
    tf.where(tf.logicalAnd(tf.greaterEqual(x, attrs.clipValueMin as number), tf.lessEqual(x, attrs.clipValueMax as number)), dy, tf.zerosLike(dy)),
  ),
  { kernelName: 'Cast', gradFunc: (dy) => ({ x: () => (dy as Tensor).clone() }) },
  { kernelName: 'Identity', gradFunc: (dy) => ({ x: () => f32(dy as Tensor) }) },
  {
    kernelName: 'Select',
    inputsToSave: ['condition'],
    gradFunc: (dy, saved) => {
      const [condition] = saved;
      const g = dy as Tensor;
      return {
        condition: () => tf.zerosLike(f32(condition)),
        t: () => tf.mul(g, tf.cast(condition, g.dtype)),
        e: () => tf.mul(g, tf.cast(tf.logicalNot(condition), g.dtype)),
      };
    },
  },

  // Ops with no useful gradient: zeros, so that tf.grads can pass through them.
  ...['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'FloorDiv', 'Mod'].map(zeroBinary),
  ...['LogicalNot', 'Floor', 'Ceil', 'Round', 'Sign', 'Step', 'IsNan', 'IsInf', 'IsFinite', 'ZerosLike', 'OnesLike', 'ArgMax', 'ArgMin'].map(
    zeroUnary,
  ),
  {
    kernelName: 'OneHot',
    inputsToSave: ['indices'],
    gradFunc: (_dy, saved) => ({ indices: () => tf.zeros(saved[0].shape, 'float32') }),
  },

  // Reductions and normalisations.
  {
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const shape = keepDimsShape(x.shape, util.parseAxisParam(attrs.axis as number | number[], x.shape));
      return { x: () => tf.broadcastTo(tf.reshape(dy as Tensor, shape), x.shape) };
    },
  },
  {
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const axes = util.parseAxisParam(attrs.axis as number | number[], x.shape);
      const reduceSize = util.sizeFromShape(backend_util.computeOutAndReduceShapes(x.shape, axes)[1]);
      const shape = keepDimsShape(x.shape, axes);
      return { x: () => tf.broadcastTo(tf.div(tf.reshape(dy as Tensor, shape), reduceSize), x.shape) };
    },
  },
  {
    kernelName: 'Max',
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, y] = saved;
      return { x: () => minMaxGrad(dy as Tensor, y, x, util.parseAxisParam(attrs.reductionIndices as number | number[], x.shape)) };
    },
  },
  {
    kernelName: 'Min',
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, y] = saved;
      return { x: () => minMaxGrad(dy as Tensor, y, x, util.parseAxisParam(attrs.axis as number | number[], x.shape)) };
    },
  },
  {
    kernelName: 'Prod',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const axis = attrs.axis as number | number[] | null | undefined;
      const axes = axis == null ? x.shape.map((_, i) => i) : util.parseAxisParam(axis, x.shape);
      return { x: () => prodGrad(x, dy as Tensor, axes) };
    },
  },
  {
    kernelName: 'Cumsum',
    gradFunc: (dy, _saved, attrs) => {
      const { axis, exclusive, reverse } = attrs as { axis: number; exclusive: boolean; reverse: boolean };
      return {
        x: () => {
          // (Upstream also transposes here, which is wrong for a non-last axis: tf.cumsum already
          // returns the input's layout.)
          return tf.cumsum(dy as Tensor, axis, exclusive, !reverse);
        },
      };
    },
  },
  {
    kernelName: 'Softmax',
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [y] = saved;
      const dyTimesY = tf.mul(dy as Tensor, y);
      return { logits: () => tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [attrs.dim as number], true), y)) };
    },
  },
  {
    kernelName: 'LogSoftmax',
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [value] = saved;
      return { logits: () => tf.sub(dy as Tensor, tf.mul(tf.sum(dy as Tensor, attrs.axis as number, true), tf.exp(value))) };
    },
  },

  // Matrix products.
  {
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const g = dy as Tensor;
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      let da: () => Tensor;
      let db: () => Tensor;
      if (!transposeA && !transposeB) {
        da = () => tf.matMul(g, b, false, true);
        db = () => tf.matMul(a, g, true, false);
      } else if (!transposeA && transposeB) {
        da = () => tf.matMul(g, b, false, false);
        db = () => tf.matMul(g, a, true, false);
      } else if (transposeA && !transposeB) {
        da = () => tf.matMul(b, g, false, true);
        db = () => tf.matMul(a, g, false, false);
      } else {
        da = () => tf.matMul(b, g, true, true);
        db = () => tf.matMul(g, a, true, true);
      }
      return { a: () => reduceTo(da(), a.shape), b: () => reduceTo(db(), b.shape) };
    },
  },
  {
    kernelName: 'Einsum',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const { inputs, output } = parseEinsum(attrs.equation as string, saved.length);
      const g = dy as Tensor;
      const map: NamedGradientMap = {};
      saved.forEach((t, i) => {
        const other = saved.length === 2 ? { labels: inputs[1 - i], t: saved[1 - i] } : null;
        map[String(i)] = () => einsumOperandGrad(g, output, inputs[i], other, t.shape);
      });
      return map;
    },
  },

  // Shape and indexing ops.
  unary('Reshape', (dy, x) => tf.reshape(dy, x.shape)),
  {
    kernelName: 'ExpandDims',
    inputsToSave: ['input'],
    gradFunc: (dy, saved) => ({ input: () => tf.reshape(dy as Tensor, saved[0].shape) }),
  },
  {
    kernelName: 'Transpose',
    gradFunc: (dy, _saved, attrs) => ({ x: () => tf.transpose(dy as Tensor, backend_util.getUndoAxesPermutation(attrs.perm as number[])) }),
  },
  {
    kernelName: 'Concat',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const axis = util.parseAxisParam(attrs.axis as number, saved[0].shape)[0];
      const parts = tf.split(dy as Tensor, saved.map((t) => t.shape[axis]), axis);
      return Object.fromEntries(parts.map((p, i) => [String(i), () => p]));
    },
  },
  {
    kernelName: 'Pack',
    saveAllInputs: true,
    gradFunc: (dy, _saved, attrs) => {
      const parts = tf.unstack(dy as Tensor, attrs.axis as number);
      return Object.fromEntries(parts.map((p, i) => [String(i), () => p]));
    },
  },
  {
    kernelName: 'Unpack',
    gradFunc: (dy, _saved, attrs) => ({ value: () => tf.stack(dy as Tensor[], attrs.axis as number) }),
  },
  {
    kernelName: 'SplitV',
    gradFunc: (dy, _saved, attrs) => ({ x: () => tf.concat(dy as Tensor[], attrs.axis as number) }),
  },
  unary('Slice', (dy, x, attrs) => {
    const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin as number[], attrs.size as number[]);
    return tf.pad(dy, begin.map((b, i) => [b, x.shape[i] - b - size[i]] as [number, number]));
  }),
  unary('StridedSlice', (dy, x, attrs) => {
    const a = attrs as Record<string, number & number[]>;
    const info = tf.slice_util.sliceInfo(x.shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask, a.newAxisMask, a.shrinkAxisMask);
    util.assert(info.begin.length === x.rank, () => `stridedSlice gradient: ellipsis/new-axis masks are not supported`);
    // The slice's extent along every axis of x (shrunk axes included, as 1).
    const shape = tf.slice_util.computeOutShape(info.begin, info.end, info.strides).map((d) => Math.max(0, d));
    const g = tf.reshape(dy, shape);
    if (info.strides.every((s) => s === 1)) {
      return tf.pad(g, info.begin.map((b, i) => [b, x.shape[i] - b - shape[i]] as [number, number]));
    }
    // General strides: scatter dy to the positions begin + k·stride it was read from.
    const n = util.sizeFromShape(shape);
    if (n === 0) return tf.zeros(x.shape);
    const rank = x.rank;
    const indices = new Int32Array(n * rank);
    const k = new Array<number>(rank).fill(0);
    for (let e = 0; e < n; e++) {
      for (let i = 0; i < rank; i++) indices[e * rank + i] = info.begin[i] + k[i] * info.strides[i];
      for (let i = rank - 1; i >= 0; i--) {
        if (++k[i] < shape[i]) break;
        k[i] = 0;
      }
    }
    return tf.scatterND(tf.tensor2d(indices, [n, rank], 'int32'), tf.reshape(g, [n]), x.shape);
  }),
  unary('PadV2', (dy, x, attrs) =>
    tf.slice(
      dy,
      (attrs.paddings as Array<[number, number]>).map((p) => p[0]),
      x.shape,
    ),
  ),
  unary('Tile', (dy, x, attrs) => {
    const reps = attrs.reps as number[];
    const split = x.shape.flatMap((s, i) => [reps[i], s]);
    return tf.reshape(tf.sum(tf.reshape(dy, split), x.shape.map((_, i) => 2 * i)), x.shape);
  }),
  {
    kernelName: 'BroadcastTo',
    gradFunc: (dy, _saved, attrs) => {
      const inputShape = attrs.inputShape as number[];
      const g = dy as Tensor;
      return { x: () => reduceTo(g, inputShape) };
    },
  },
  {
    kernelName: 'Reverse',
    gradFunc: (dy, _saved, attrs) => ({ x: () => tf.reverse(dy as Tensor, util.parseAxisParam(attrs.dims as number[], (dy as Tensor).shape)) }),
  },
  {
    kernelName: 'GatherV2',
    inputsToSave: ['x', 'indices'],
    gradFunc: (dy, saved, attrs) => {
      const [x, indices] = saved;
      const g = dy as Tensor;
      const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
      const batchDims = (attrs.batchDims as number | undefined) ?? 0;
      const dx = (): Tensor => {
        if (batchDims === 0) return gatherGrad(x, indices, g, axis);
        util.assert(batchDims === 1, () => `gather gradient: batchDims ${batchDims} is not supported (0 or 1)`);
        const n = x.shape[0];
        const xs = tf.unstack(x);
        const is = tf.unstack(indices);
        const dys = tf.unstack(g);
        return tf.reshape(tf.stack(xs.map((xi, i) => gatherGrad(xi, is[i], dys[i], axis - 1))), [n, ...x.shape.slice(1)]);
      };
      return { x: dx, indices: () => tf.zerosLike(f32(indices)) };
    },
  },
  {
    kernelName: 'UnsortedSegmentSum',
    inputsToSave: ['segmentIds'],
    gradFunc: (dy, saved) => {
      const [ids] = saved;
      return {
        x: () => {
          const g = dy as Tensor;
          const gathered = tf.gather(g, tf.maximum(ids, tf.zerosLike(ids)));
          let valid = tf.greaterEqual(ids, tf.scalar(0, 'int32'));
          while (valid.rank < gathered.rank) valid = tf.expandDims(valid, valid.rank);
          return tf.where(tf.broadcastTo(valid, gathered.shape), gathered, tf.zerosLike(gathered));
        },
      };
    },
  },
];

/** Kernels whose upstream gradient we replace even when one is registered (see the list above). */
const OVERRIDE = new Set(['BatchMatMul', 'Maximum', 'Minimum', 'SquaredDifference', 'Tile', 'GatherV2', 'Cumsum']);

let registered = false;

/**
 * Registers the gradients above, for every backend (gradients are backend-agnostic). Kernels
 * that already have a gradient (e.g. registered by @tensorflow/tfjs when tfjs-node is loaded)
 * keep it, except those in OVERRIDE. Idempotent.
 */
export function registerGradients(): void {
  if (registered) return;
  registered = true;
  for (const config of GRADIENTS) {
    if (tf.getGradient(config.kernelName) != null) {
      if (!OVERRIDE.has(config.kernelName)) continue;
      tf.unregisterGradient(config.kernelName);
    }
    tf.registerGradient(config);
  }
}

/** The kernel names that registerGradients covers (for tests and diagnostics). */
export const GRADIENT_KERNELS: readonly string[] = GRADIENTS.map((g) => g.kernelName);
