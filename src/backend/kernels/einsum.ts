import { backend_util, Einsum, getKernel, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

/**
 * Einsum as sum-out / transpose / reshape / BatchMatMul, built from the kernels already registered
 * for the backend (so it runs at matMul speed, where tfjs' cpu kernel materialises the full
 * outer product). Same restrictions as tf.einsum: one or two operands, no ellipsis, no label
 * repeated inside one operand.
 */

interface BackendWithDispose {
  disposeData(dataId: TensorInfo['dataId']): unknown;
}

export interface EinsumPlan {
  /** The operands' labels, e.g. ['bij', 'bjk']. */
  inputs: string[];
  /** The output labels, e.g. 'bik'. */
  output: string;
}

/** Parses and validates an equation (tfjs' own checks first, so its error messages are kept). */
export function parseEinsum(equation: string, numTensors: number): EinsumPlan {
  backend_util.decodeEinsumEquation(equation, numTensors);
  const [lhs, output] = equation.replace(/\s/g, '').split('->');
  util.assert(new Set(output).size === output.length, () => `einsum: output subscripts "${output}" repeat a label`);
  return { inputs: lhs.split(','), output };
}

const sameLabels = (a: string[], b: string[]) => a.length === b.length && a.every((l, i) => l === b[i]);

function isIdentity(perm: number[]): boolean {
  return perm.every((p, i) => p === i);
}

export function makeEinsumKernel(backendName: string): KernelFunc {
  return (args) => {
    const backend = args.backend as BackendWithDispose;
    const equation = args.attrs!.equation as string;
    const tensors = Object.keys(args.inputs)
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => args.inputs[k]!);
    const { inputs: terms, output } = parseEinsum(equation, tensors.length);
    const { allDims, idDims } = backend_util.decodeEinsumEquation(equation, tensors.length);
    backend_util.checkEinsumDimSizes(allDims.length, idDims, tensors as unknown as Parameters<typeof backend_util.checkEinsumDimSizes>[2]);
    tensors.forEach((t, i) =>
      util.assert(t.shape.length === terms[i].length, () => `einsum: operand ${i} has rank ${t.shape.length}, but "${terms[i]}" names ${terms[i].length} axes`),
    );

    const temps: TensorInfo[] = [];
    const run = (name: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown> = {}): TensorInfo => {
      const kernel = getKernel(name, backendName);
      if (!kernel) throw new Error(`einsum: kernel ${name} is not registered for backend ${backendName}`);
      const out = kernel.kernelFunc({ inputs, backend, attrs: attrs as never }) as TensorInfo;
      temps.push(out);
      return out;
    };
    const finish = (out: TensorInfo): TensorInfo => {
      for (const t of temps) if (t !== out) backend.disposeData(t.dataId);
      return out;
    };
    const dimOf = new Map<string, number>();
    tensors.forEach((t, i) => [...terms[i]].forEach((l, j) => dimOf.set(l, t.shape[j])));
    const sizeOf = (labels: string[]) => labels.reduce((p, l) => p * dimOf.get(l)!, 1);

    // 1. Sum out the labels that only this operand has and the output lacks.
    const operands = tensors.map((t, i) => {
      const labels = [...terms[i]];
      const others = terms.filter((_, j) => j !== i).join('') + output;
      const axes = labels.map((l, j) => (others.includes(l) ? -1 : j)).filter((j) => j >= 0);
      if (axes.length === 0) return { t, labels };
      return { t: run('Sum', { x: t }, { axis: axes, keepDims: false }), labels: labels.filter((_, j) => !axes.includes(j)) };
    });

    // Arranges operand `o` as `order` (a permutation of its labels), reshaped to `shape3`.
    const arrange = (o: { t: TensorInfo; labels: string[] }, order: string[], shape: number[]): TensorInfo => {
      let t = o.t;
      const perm = order.map((l) => o.labels.indexOf(l));
      if (!isIdentity(perm)) t = run('Transpose', { x: t }, { perm });
      if (!util.arraysEqual(t.shape, shape)) t = run('Reshape', { x: t }, { shape });
      return t;
    };

    if (operands.length === 1) {
      const [a] = operands;
      const order = [...output];
      const perm = order.map((l) => a.labels.indexOf(l));
      if (a.t !== tensors[0] && isIdentity(perm)) return finish(a.t);
      if (isIdentity(perm)) return finish(run('Identity', { x: a.t }));
      return finish(run('Transpose', { x: a.t }, { perm }));
    }

    const [a, b] = operands;
    const batch = [...output].filter((l) => a.labels.includes(l) && b.labels.includes(l));
    const contracted = a.labels.filter((l) => b.labels.includes(l) && !output.includes(l));
    const freeA = a.labels.filter((l) => !b.labels.includes(l));
    const freeB = b.labels.filter((l) => !a.labels.includes(l));
    const [nBatch, nK, nA, nB] = [batch, contracted, freeA, freeB].map(sizeOf);

    // Use transposeA/B where the operand's own layout allows it, to save a transpose.
    const transposeA = sameLabels(a.labels, [...batch, ...contracted, ...freeA]) && !sameLabels(a.labels, [...batch, ...freeA, ...contracted]);
    const transposeB = sameLabels(b.labels, [...batch, ...freeB, ...contracted]) && !sameLabels(b.labels, [...batch, ...contracted, ...freeB]);
    const a3 = transposeA
      ? arrange(a, [...batch, ...contracted, ...freeA], [nBatch, nK, nA])
      : arrange(a, [...batch, ...freeA, ...contracted], [nBatch, nA, nK]);
    const b3 = transposeB
      ? arrange(b, [...batch, ...freeB, ...contracted], [nBatch, nB, nK])
      : arrange(b, [...batch, ...contracted, ...freeB], [nBatch, nK, nB]);
    let out = run('BatchMatMul', { a: a3, b: b3 }, { transposeA, transposeB });
    const labels = [...batch, ...freeA, ...freeB];
    const shape = labels.map((l) => dimOf.get(l)!);
    out = run('Reshape', { x: out }, { shape });
    const perm = [...output].map((l) => labels.indexOf(l));
    if (!isIdentity(perm)) out = run('Transpose', { x: out }, { perm });
    return finish(out);
  };
}

export const einsumWasmConfig: KernelConfig = {
  kernelName: Einsum,
  backendName: 'wasm',
  kernelFunc: makeEinsumKernel('wasm'),
};
