import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GrerankError } from '../src/errors.js';
import { loadTokenizer, padAndTruncate, tokenizerFromJson, xlmrTestTokenizerJson } from '../src/io/tokenizer.js';
import { SHARED, golden } from './helpers/shared.js';

const T5_JSON = join(SHARED, 'tokenizers', 't5', 'tokenizer.json');
const tmp = mkdtempSync(join(tmpdir(), 'grerank-tok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Case {
  text: string;
  ids: number[];
  ids_no_special: number[];
  tokens: string[];
  attention_mask: number[];
  decoded_skip_special: string;
}

describe('T5 tokenizer (real tokenizer.json) against the goldens', () => {
  const g = golden('tokenizer-t5');
  const cases = g.cases as Case[];

  it('is the file the goldens were made from', () => {
    expect(createHash('sha256').update(readFileSync(T5_JSON)).digest('hex')).toBe(g.tokenizer_json_sha256);
    expect(cases.length).toBe(33);
  });

  it('loads from the file or its directory, with T5 special ids', () => {
    for (const tok of [loadTokenizer(T5_JSON), loadTokenizer(dirname(T5_JSON))]) {
      expect(tok.vocabSize).toBe(g.vocab_size_with_added);
      expect(tok.padId).toBe(0);
      expect(tok.eosId).toBe(1);
      expect(tok.bosId).toBeNull();
      expect(tok.tokenToId('<extra_id_0>')).toBe(32099);
    }
  });

  const tok = loadTokenizer(T5_JSON);
  for (const [i, c] of cases.entries()) {
    it(`case ${i}: ${JSON.stringify(c.text.slice(0, 40))}`, async () => {
      const d = await tok.encodeDetailed(c.text);
      expect(d.ids).toEqual(c.ids);
      expect(d.tokens).toEqual(c.tokens);
      expect(d.attentionMask).toEqual(c.attention_mask);
      expect(await tok.encode(c.text)).toEqual(c.ids);
      expect(await tok.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids_no_special);
      expect(await tok.decode(c.ids, true)).toBe(c.decoded_skip_special);
    });
  }

  it('encodeBatch matches encode', async () => {
    const batch = await tok.encodeBatch(cases.map((c) => c.text));
    expect(batch).toEqual(cases.map((c) => c.ids));
    const noSpecial = await tok.encodeBatch(cases.map((c) => c.text), { addSpecialTokens: false });
    expect(noSpecial).toEqual(cases.map((c) => c.ids_no_special));
  });

  it('encodePair uses the T5 template `A </s> B </s>`', async () => {
    expect(await tok.encodePair('Hello', 'world')).toEqual([8774, 1, 296, 1]);
  });
});

describe('padAndTruncate', () => {
  it('pads with padId, masks padding and keeps </s> last when truncating', () => {
    const b = padAndTruncate([[5, 6, 7, 8, 1], [9, 1], [], [5, 6, 7, 8, 9]], 4, 0, 1);
    expect(b.shape).toEqual([4, 4]);
    expect([...b.ids]).toEqual([5, 6, 7, 1, 9, 1, 0, 0, 0, 0, 0, 0, 5, 6, 7, 8]);
    expect([...b.mask]).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    // without eosId it is a plain cut
    expect([...padAndTruncate([[5, 6, 7, 8, 1]], 4, 0).ids]).toEqual([5, 6, 7, 8]);
    // XLM-R pads with 1
    expect([...padAndTruncate([[0, 5, 2]], 5, 1).ids]).toEqual([0, 5, 2, 1, 1]);
  });

  it('truncates real T5 encodings like HF truncation of `text </s>`', async () => {
    const tok = loadTokenizer(T5_JSON);
    const long = 'The quick brown fox jumps over the lazy dog.';
    const ids = await tok.encode(long);
    const b = padAndTruncate([ids], 6, tok.padId!, tok.eosId!);
    expect([...b.ids]).toEqual([...ids.slice(0, 5), 1]);
  });
});

describe('XLM-R-shaped test tokenizer', () => {
  const tok = tokenizerFromJson(xlmrTestTokenizerJson(), 'xlmr-test');

  it('has the XLM-R special ids', () => {
    expect([tok.tokenToId('<s>'), tok.padId, tok.eosId, tok.tokenToId('<unk>')]).toEqual([0, 1, 2, 3]);
    expect(tok.bosId).toBe(0);
    expect(tok.vocabSize).toBeLessThan(1000); // fits xlmr-ce-tiny's vocabulary
  });

  it('encodes a single text as `<s> A </s>` and a pair as `<s> q </s></s> d </s>`', async () => {
    const q = await tok.encode('what is the capital of france?', { addSpecialTokens: false });
    const d = await tok.encode('Paris is the capital and most populous city of France.', { addSpecialTokens: false });
    expect(q.length).toBeGreaterThan(3);
    expect(q.every((x) => x > 3)).toBe(true);
    expect(await tok.encode('what is the capital of france?')).toEqual([0, ...q, 2]);
    expect(await tok.encodePair('what is the capital of france?', 'Paris is the capital and most populous city of France.'))
      .toEqual([0, ...q, 2, 2, ...d, 2]);
    expect(await tok.decode(await tok.encodePair('who wrote', 'charles darwin'), true)).toBe('who wrote charles darwin');
  });

  it('loads through a tokenizer.json file in a directory', async () => {
    writeFileSync(join(tmp, 'tokenizer.json'), xlmrTestTokenizerJson(['hello', 'world']));
    const t = loadTokenizer(tmp);
    expect(await t.encodePair('hello', 'world')).toEqual([0, 4, 2, 2, 5, 2]);
  });
});

describe('tokenizer errors', () => {
  const msgOf = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(GrerankError);
      expect((e as Error).message).not.toContain('\n');
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };

  it('one-line errors naming the file', () => {
    const dir = mkdtempSync(join(tmp, 'empty-'));
    expect(msgOf(() => loadTokenizer(join(tmp, 'nope.json')))).toBe(`${join(tmp, 'nope.json')}: no such tokenizer file or directory`);
    expect(msgOf(() => loadTokenizer(dir))).toMatch(new RegExp(`^${join(dir, 'tokenizer.json')}: missing`));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"version": "1.0", "model": ');
    expect(msgOf(() => loadTokenizer(bad))).toMatch(new RegExp(`^${bad}(:\\d+:\\d+)?: invalid JSON`));
    writeFileSync(bad, Buffer.from([0x7b, 0xff, 0x7d]));
    expect(msgOf(() => loadTokenizer(bad))).toBe(`${bad}: not valid UTF-8`);
    writeFileSync(bad, '{"version": "1.0", "model": {"type": "Nope"}}');
    expect(msgOf(() => loadTokenizer(bad))).toMatch(new RegExp(`^${bad}: not a valid Hugging Face tokenizer.json \\(`));
  });
});
