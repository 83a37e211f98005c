/**
 * Model-directory loading (preference order, sharded safetensors), the safetensors writer, and
 * the one-line errors for broken inputs.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, GrerankError } from '../src/errors.js';
import { expectTensor, loadStateDict, readConfig } from '../src/io/checkpoint.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import type { RawTensor } from '../src/io/types.js';
import { CHECKPOINTS } from './helpers/shared.js';

const tmp = mkdtempSync(join(tmpdir(), 'grerank-io-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const newDir = () => {
  const d = join(tmp, `d${n++}`);
  mkdirSync(d);
  return d;
};

/** A safetensors file built by hand: header JSON + raw bytes. */
function rawSafetensors(header: object, data: Uint8Array): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

async function oneLineError(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GrerankError);
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('loadStateDict', () => {
  it('prefers model.safetensors and records the source of every tensor', async () => {
    const dir = join(CHECKPOINTS, 't5-fid-tiny');
    const sd = await loadStateDict(dir);
    expect(sd.tensors.size).toBe(47); // the .bin has 50 (tied aliases)
    expect(new Set(sd.source.values())).toEqual(new Set([join(dir, 'model.safetensors')]));
    expect(expectTensor(sd, 'shared.weight', [512, 64]).dtype).toBe('float32');
  });

  it('loads sharded safetensors through model.safetensors.index.json', async () => {
    const dir = newDir();
    const src = readSafetensors(join(CHECKPOINTS, 't5-fid-tiny', 'model.safetensors'));
    const names = [...src.keys()];
    const parts = [names.slice(0, 10), names.slice(10, 30), names.slice(30)];
    const weightMap: Record<string, string> = {};
    parts.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00003.safetensors`;
      writeSafetensors(join(dir, file), new Map(part.map((k) => [k, src.get(k)!])));
      for (const k of part) weightMap[k] = file;
    });
    const index = join(dir, 'model.safetensors.index.json');
    writeFileSync(index, JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    const sd = await loadStateDict(dir);
    expect([...sd.tensors.keys()].sort()).toEqual([...names].sort());
    for (const k of names) expect(sd.tensors.get(k)!.data).toEqual(src.get(k)!.data);
    expect(sd.source.get(names[0]!)).toBe(join(dir, 'model-00001-of-00003.safetensors'));
    expect(sd.source.get(names[40]!)).toBe(join(dir, 'model-00003-of-00003.safetensors'));

    // a tensor the index promises but the shard lacks
    writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, 'extra.weight': 'model-00002-of-00003.safetensors' } }));
    expect(await oneLineError(loadStateDict(dir))).toBe(
      `${join(dir, 'model-00002-of-00003.safetensors')}: tensor extra.weight (listed in model.safetensors.index.json) is missing from this shard`,
    );
    // a shard path outside the directory
    writeFileSync(index, JSON.stringify({ weight_map: { a: '../model.safetensors' } }));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${index}: weight_map entry a names "../model.safetensors", not a file beside the index`);
    writeFileSync(index, JSON.stringify({ weights: {} }));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${index}: no "weight_map" object`);
    // a missing shard
    writeFileSync(index, JSON.stringify({ weight_map: weightMap }));
    rmSync(join(dir, 'model-00003-of-00003.safetensors'));
    expect(await oneLineError(loadStateDict(dir))).toBe(
      `${index}: shard model-00003-of-00003.safetensors (holding ${names[30]} and ${parts[2]!.length - 1} more) is missing`,
    );
  });

  it('gives one-line errors for a missing directory and a directory without weights', async () => {
    const missing = join(tmp, 'no-such-dir');
    expect(await oneLineError(loadStateDict(missing))).toBe(`${missing}: model directory does not exist`);
    const empty = newDir();
    writeFileSync(join(empty, 'config.json'), '{}');
    const msg = await oneLineError(loadStateDict(empty));
    expect(msg).toBe(
      `${empty}: no weights found (looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json)`,
    );
  });

  it('expectTensor names the file and the shape mismatch', async () => {
    const sd = await loadStateDict(join(CHECKPOINTS, 'xlmr-ce-tiny'));
    const msg = await oneLineError(() => expectTensor(sd, 'classifier.out_proj.weight', [2, 64]));
    expect(msg).toMatch(/model\.safetensors: tensor classifier\.out_proj\.weight has shape \[1, 64\], expected \[2, 64\]$/);
    expect(await oneLineError(() => expectTensor(sd, 'nope', [1]))).toContain('tensor nope is missing');
  });
});

describe('safetensors', () => {
  it('writeSafetensors round-trips float32 and int32 tensors and metadata, atomically', () => {
    const dir = newDir();
    const file = join(dir, 'out.safetensors');
    const tensors = new Map<string, RawTensor>([
      ['b.weight', { dtype: 'float32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, NaN, -0, 1e-40]) }],
      ['a.ids', { dtype: 'int32', shape: [3], data: new Int32Array([0, -7, 2147483647]) }],
      ['scalar', { dtype: 'float32', shape: [], data: new Float32Array([42]) }],
      ['empty', { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) }],
      // a view into a bigger buffer must write only its own bytes
      ['view', { dtype: 'float32', shape: [2], data: new Float32Array([9, 8, 7, 6]).subarray(1, 3) }],
    ]);
    writeSafetensors(file, tensors, { format: 'pt', step: '12' });
    writeSafetensors(file, tensors, { format: 'pt', step: '12' }); // overwrite in place
    expect(readdirSync(dir)).toEqual(['out.safetensors']); // no temp files left behind
    const back = readSafetensors(file);
    expect([...back.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [k, t] of tensors) {
      expect(back.get(k)!.dtype).toBe(t.dtype);
      expect(back.get(k)!.shape).toEqual(t.shape);
      expect(Buffer.from(back.get(k)!.data.buffer, back.get(k)!.data.byteOffset, back.get(k)!.data.byteLength))
        .toEqual(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    const bytes = readFileSync(file);
    const hlen = Number(bytes.readBigUInt64LE(0));
    expect(hlen % 8).toBe(0);
    expect(JSON.parse(bytes.toString('utf8', 8, 8 + hlen)).__metadata__).toEqual({ format: 'pt', step: '12' });
    expect(readSafetensorsHeader(file).get('b.weight')!.dtype).toBe('F32');
    expect(() => writeSafetensors(join(dir, 'bad.safetensors'), new Map([['x', { dtype: 'float32', shape: [3], data: new Float32Array(2) }]])))
      .toThrow(/tensor x has 2 values for shape \[3\]/);
    expect(readdirSync(dir)).toEqual(['out.safetensors']);
  });

  it('round-trips a real checkpoint bit for bit', () => {
    const src = readSafetensors(join(CHECKPOINTS, 'xlmr-ce-tiny', 'model.safetensors'));
    const file = join(newDir(), 'model.safetensors');
    writeSafetensors(file, src);
    const back = readSafetensors(file);
    for (const [k, t] of src) expect(back.get(k)!.data).toEqual(t.data);
  });

  it('converts F16, BF16 and F64 (hand-written values) and I64 to float32/int32', () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x7c00]);
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x4049, 0x0001]);
    const f64 = new Float64Array([0.1, -2.5]);
    const i64 = new BigInt64Array([5n, -3n]);
    const parts = [f16, bf16, f64, i64].map((a) => Buffer.from(a.buffer));
    let o = 0;
    const off = (b: Buffer) => [o, (o += b.length)];
    const header = {
      h: { dtype: 'F16', shape: [6], data_offsets: off(parts[0]!) },
      b: { dtype: 'BF16', shape: [2, 2], data_offsets: off(parts[1]!) },
      d: { dtype: 'F64', shape: [2], data_offsets: off(parts[2]!) },
      i: { dtype: 'I64', shape: [2], data_offsets: off(parts[3]!) },
    };
    const file = join(newDir(), 'x.safetensors');
    writeFileSync(file, rawSafetensors(header, Buffer.concat(parts)));
    const t = readSafetensors(file);
    expect([...t.get('h')!.data]).toEqual([1, -2, 65504, 2 ** -24, 0.333251953125, Infinity]);
    expect([...t.get('b')!.data]).toEqual([1, -3, 3.140625, 2 ** -133]);
    expect([...t.get('d')!.data]).toEqual([Math.fround(0.1), -2.5]);
    expect(t.get('i')).toEqual({ dtype: 'int32', shape: [2], data: new Int32Array([5, -3]) });
  });

  it('gives one-line errors naming the file for truncated files and bad offsets', async () => {
    const dir = newDir();
    const good = readFileSync(join(CHECKPOINTS, 'xlmr-ce-tiny', 'model.safetensors'));
    const f = join(dir, 'model.safetensors');

    writeFileSync(f, good.subarray(0, 5));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${f}: not a safetensors file (only 5 bytes)`);
    writeFileSync(f, good.subarray(0, 200)); // cut inside the header
    expect(await oneLineError(loadStateDict(dir))).toMatch(new RegExp(`^${f}: not a safetensors file \\(header length \\d+ does not fit in 200 bytes\\)$`));
    writeFileSync(f, good.subarray(0, good.length - 100)); // cut inside the data
    expect(await oneLineError(loadStateDict(dir))).toMatch(new RegExp(`^${f}: tensor .*: data offsets \\[\\d+, \\d+\\) lie outside the file \\(\\d+ data bytes\\)$`));

    writeFileSync(f, rawSafetensors({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${f}: tensor w: data offsets [0, 16) lie outside the file (8 data bytes)`);
    writeFileSync(f, rawSafetensors({ w: { dtype: 'F32', shape: [4], data_offsets: [8, 4] } }, new Uint8Array(16)));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${f}: tensor w: data offsets [8, 4) lie outside the file (16 data bytes)`);
    writeFileSync(f, rawSafetensors({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, new Uint8Array(16)));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${f}: tensor w: 16 bytes of data, but 3 elements of F32 need 12`);
    writeFileSync(f, rawSafetensors({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${f}: tensor w: unsupported dtype F8_E4M3`);
    writeFileSync(f, rawSafetensors({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)));
    expect(await oneLineError(loadStateDict(dir))).toBe(`${f}: tensor w: malformed header entry`);
    const notJson = Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xfe, 0x7b])]);
    writeFileSync(f, notJson);
    expect(await oneLineError(loadStateDict(dir))).toMatch(new RegExp(`^${f}: safetensors header is not valid UTF-8 JSON`));
  });
});

describe('config.json', () => {
  it('gives one-line errors for missing, non-UTF-8 and truncated files', () => {
    const dir = newDir();
    const file = join(dir, 'config.json');
    expect(() => readConfig(join(tmp, 'nope'))).toThrow(`${join(tmp, 'nope')}: model directory does not exist`);
    expect(() => readConfig(dir)).toThrow(`${file}: missing (not a Hugging Face model directory)`);
    writeFileSync(file, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])); // {"a":"\xc3(" }
    expect(() => readConfig(dir)).toThrow(`${file}: not valid UTF-8`);
    copyFileSync(join(CHECKPOINTS, 't5-fid-tiny', 'config.json'), file);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, Math.floor(text.length / 2)));
    let msg = '';
    try {
      readConfig(dir);
    } catch (e) {
      expect(e).toBeInstanceOf(GrerankError);
      expect(e).not.toBeInstanceOf(CheckpointError);
      msg = (e as Error).message;
    }
    expect(msg).toMatch(new RegExp(`^${file}(:\\d+:\\d+)?: invalid JSON`));
    expect(msg).not.toContain('\n');
  });
});
