import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { CHECKPOINTS } from './helpers/shared.js';

describe('safetensors reader', () => {
  it('reads the tiny T5 checkpoint with the shapes its config implies', () => {
    const t = readSafetensors(join(CHECKPOINTS, 't5-fid-tiny', 'model.safetensors'));
    expect(t.get('shared.weight')!.shape).toEqual([512, 64]);
    expect(t.get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight')!.shape).toEqual([32, 4]);
    expect(t.get('decoder.block.1.layer.2.DenseReluDense.wo.weight')!.shape).toEqual([64, 128]);
    const w = t.get('shared.weight')!.data;
    expect(w).toBeInstanceOf(Float32Array);
    expect(w.every((x) => Number.isFinite(x))).toBe(true);
  });
});
