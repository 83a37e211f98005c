import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RerankBatch } from '../src/data/batch.js';
import { encodeBatch, type EncodeSpec } from '../src/data/encode.js';
import type { Example } from '../src/data/examples.js';
import { TokenizePool } from '../src/data/pool.js';
import { movableBatch } from '../src/data/tokenize-worker.js';
import { Piscina } from 'piscina';
import { loadTokenizer, xlmrTestTokenizerJson } from '../src/io/tokenizer.js';
import { Rng } from '../src/util/rng.js';
import { SHARED } from './helpers/shared.js';

const T5 = join(SHARED, 'tokenizers/t5/tokenizer.json');
let dir: string;
let xlmr: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'grerank-pool-'));
  xlmr = join(dir, 'xlmr.json');
  writeFileSync(xlmr, xlmrTestTokenizerJson());
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function examples(count: number, n: number, seed = 0): Example[] {
  const words = ['what', 'is', 'the', 'capital', 'of', 'france', 'paris', 'city', 'who', 'wrote', 'darwin', 'species', 'naïve', '😀', 'Zürich'];
  const rng = new Rng(seed);
  const text = (len: number) => Array.from({ length: len }, () => words[rng.int(words.length)]).join(' ');
  return Array.from({ length: count }, (_, i) => ({
    id: `q${i}`,
    question: `${text(6)}?`,
    ...(i % 2 ? { target: text(3) } : {}),
    answers: [text(2), text(3), text(1)],
    ctxs: Array.from({ length: n + 1 }, (_, k) => ({ title: k % 3 ? text(2) : '', text: text(20 + rng.int(400)), gold: k === 0 })),
  }));
}

function plain(b: RerankBatch): Record<string, unknown> {
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, ArrayBuffer.isView(v) ? Array.from(v as Int32Array) : v]));
}

const spec: EncodeSpec = { nPassages: 5, passageMaxLength: 64, pairMaxLength: 96, answerMaxLength: 8 };

describe('TokenizePool', () => {
  it('gives exactly encodeBatch in the main thread (RankT5 pairs, real T5 tokenizer), with targets drawn from the same generator', async () => {
    if (!existsSync(T5)) return;
    const tok = loadTokenizer(T5);
    const pool = new TokenizePool({ reader: T5, threads: 2 });
    expect(pool.threads).toBe(2);
    const exs = examples(12, spec.nPassages);
    const batches = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]];
    const mainRng = new Rng(7);
    const poolRng = new Rng(7);
    const want = [];
    for (const idx of batches) want.push(await encodeBatch(idx.map((i) => exs[i]!), idx, tok, { kind: 'rankt5', tokenizer: tok }, spec, mainRng));
    // All in flight at once (prefetch): each resolves to its own batch.
    const got = await Promise.all(batches.map((idx) => pool.encode(idx.map((i) => exs[i]!), idx, spec, 'rankt5', poolRng)));
    for (let k = 0; k < batches.length; k++) {
      expect(got[k]!.pairIds).toBeInstanceOf(Int32Array);
      expect(plain(got[k]!)).toEqual(plain(want[k]!));
    }
    expect(mainRng.state()).toEqual(poolRng.state());
    await pool.close();
    await expect(pool.encode(exs.slice(0, 1), [0], spec, 'rankt5')).rejects.toThrow(/closed/);
  });

  it('cross-encoder pairs with a separate pair tokenizer', async () => {
    if (!existsSync(T5)) return;
    const readerTok = loadTokenizer(T5);
    const pairTok = loadTokenizer(xlmr);
    const pool = new TokenizePool({ reader: T5, pair: xlmr });
    const exs = examples(3, spec.nPassages, 3);
    const want = await encodeBatch(exs, [5, 6, 7], readerTok, { kind: 'cross-encoder', tokenizer: pairTok }, spec);
    const got = await pool.encode(exs, [5, 6, 7], spec, 'cross-encoder');
    expect(plain(got)).toEqual(plain(want));
    await pool.close();
  });

  it('moves the typed arrays back (transfer list of every buffer, no copies)', async () => {
    const tok = loadTokenizer(xlmr);
    const b = await encodeBatch(examples(2, 3), [0, 1], tok, { kind: 'cross-encoder', tokenizer: tok }, { ...spec, nPassages: 3 });
    const moved = movableBatch(b) as Record<symbol, unknown>;
    const list = moved[Piscina.transferableSymbol] as ArrayBuffer[];
    expect(list).toHaveLength(6);
    for (const a of [b.pairIds, b.pairMask, b.passageIds, b.passageMask, b.labels, b.index]) expect(list).toContain(a.buffer);
    expect(moved[Piscina.valueSymbol]).toBe(b);
  });

  it('reports errors of a batch as GrerankErrors and keeps working', async () => {
    const pool = new TokenizePool({ reader: xlmr });
    const exs = examples(2, spec.nPassages);
    await expect(pool.encode(exs, [0, 1], { ...spec, nPassages: 9 }, 'rankt5')).rejects.toThrow(/example q0: 6 passages, but --n-passages is 9/);
    const ok = await pool.encode(exs, [0, 1], spec, 'rankt5');
    expect(ok.b).toBe(2);
    await pool.close();
    expect(() => new TokenizePool({ reader: join(dir, 'missing.json') })).toThrow(/no such tokenizer/);
  });
});
