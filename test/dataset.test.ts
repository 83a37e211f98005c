import { appendFileSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dataset } from '../src/data/dataset.js';
import { readExamples, type Example } from '../src/data/examples.js';
import { prepare } from '../src/data/prepare/prepare.js';
import { SHARED } from './helpers/shared.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'grerank-dataset-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ex(i: number, extra = ''): Example {
  return {
    id: `q${i}`,
    question: `question ${i}${extra} — naïve “quotes” \\ "escaped" ]}{[`,
    target: `a${i}`,
    answers: [`a${i}`],
    ctxs: [
      { title: `t${i}`, text: `passage ${i}, with a , comma and ] bracket` },
      { title: '', text: 'second\nline 😀' },
    ],
  };
}

async function sequential(file: string): Promise<Example[]> {
  return (await readExamples(file)).examples;
}

async function expectRandomAccessMatches(file: string): Promise<Dataset> {
  const all = await sequential(file);
  const ds = await Dataset.open(file, { cache: false });
  expect(ds.length).toBe(all.length);
  // Random order: each get() is one positional read of that record alone.
  const order = all.map((_, i) => i).sort((a, b) => ((a * 7919) % 13) - ((b * 7919) % 13));
  for (const i of order) expect(ds.get(i)).toEqual(all[i]);
  expect(ds.getMany([all.length - 1, 0])).toEqual([all[all.length - 1], all[0]]);
  return ds;
}

describe('Dataset: random access', () => {
  it('JSON lines and JSON arrays, records split across reads, CRLF, BOM, blank lines', async () => {
    const exs = Array.from({ length: 30 }, (_, i) => ex(i, 'x'.repeat(i * 37)));
    const jsonl = join(dir, 'a.jsonl');
    writeFileSync(jsonl, '\ufeff' + exs.map((e, i) => JSON.stringify(e) + (i % 3 === 0 ? '\r\n' : '\n') + (i % 5 === 0 ? '\n  \n' : '')).join(''));
    const arr = join(dir, 'a.json');
    writeFileSync(arr, '\ufeff[\n' + exs.map((e, i) => (i % 2 ? JSON.stringify(e, null, 2) : JSON.stringify(e))).join(' ,\n') + '\n]\n');
    for (const file of [jsonl, arr]) {
      const ds = await expectRandomAccessMatches(file);
      expect(ds.layout).toBe(file.endsWith('.jsonl') ? 'jsonl' : 'array');
      ds.close();
      // Tiny reads: every record crosses several chunk boundaries.
      const small = await Dataset.open(file, { cache: false, chunkSize: 7 });
      expect(small.getMany([0, 13, 29])).toEqual([exs[0], exs[13], exs[29]]);
      small.close();
    }
    const noIds = join(dir, 'noid.jsonl');
    writeFileSync(noIds, exs.slice(0, 3).map((e) => JSON.stringify({ ...e, id: undefined })).join('\n'));
    const ds = await Dataset.open(noIds, { cache: false, limit: 2 });
    expect(ds.length).toBe(2);
    expect(ds.get(1).id).toBe('1');
    expect(() => ds.get(2)).toThrow(/out of range/);
    ds.close();
  });

  it('the shared HotpotQA sample, converted with prepare, as JSON lines and as a JSON array', async () => {
    const raw = join(SHARED, 'datasets/hotpotqa/hotpot_dev_distractor_v1.first53.json');
    if (!existsSync(raw)) return;
    const out = join(dir, 'hotpot.jsonl');
    await prepare({ from: 'hotpotqa', input: raw, output: out, seed: 0, nCandidates: 10, skipInvalid: true, progress: null });
    (await expectRandomAccessMatches(out)).close();
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const arr = join(dir, 'hotpot.json');
    writeFileSync(arr, `[${lines.join(',\n')}]`);
    (await expectRandomAccessMatches(arr)).close();
  });
});

describe('Dataset: the FILE.idx cache', () => {
  it('is reused while the source is unchanged and rebuilt when it changes', async () => {
    const file = join(dir, 'cache.jsonl');
    writeFileSync(file, [0, 1, 2].map((i) => JSON.stringify(ex(i))).join('\n') + '\n');
    const a = await Dataset.open(file);
    expect(a.fromCache).toBe(false);
    expect(existsSync(`${file}.idx`)).toBe(true);
    expect(readFileSync(`${file}.idx`).subarray(0, 7).toString()).toBe('GRRKIDX');
    a.close();
    const b = await Dataset.open(file);
    expect(b.fromCache).toBe(true);
    expect(b.length).toBe(3);
    expect(b.get(2)).toEqual(ex(2));
    b.close();
    // touch: same bytes, new mtime -> rebuilt.
    const later = new Date(statSync(file).mtimeMs + 5000);
    utimesSync(file, later, later);
    const c = await Dataset.open(file);
    expect(c.fromCache).toBe(false);
    c.close();
    // appended record -> rebuilt, and it is there.
    appendFileSync(file, JSON.stringify(ex(3)) + '\n');
    const d = await Dataset.open(file);
    expect(d.fromCache).toBe(false);
    expect(d.length).toBe(4);
    expect(d.get(3)).toEqual(ex(3));
    d.close();
    // A corrupt index is ignored and rewritten.
    writeFileSync(`${file}.idx`, 'garbage');
    const e = await Dataset.open(file);
    expect(e.fromCache).toBe(false);
    expect(e.get(0)).toEqual(ex(0));
    e.close();
    expect((await Dataset.open(file)).fromCache).toBe(true);
  });

  it('an index built with skipInvalid is not used by a caller that does not skip', async () => {
    const file = join(dir, 'skip.jsonl');
    writeFileSync(file, `${JSON.stringify(ex(0))}\n{"question": ""}\n${JSON.stringify(ex(2))}\n`);
    const a = await Dataset.open(file, { skipInvalid: true });
    expect([a.length, a.skipped]).toEqual([2, 1]);
    expect(a.get(1)).toEqual(ex(2));
    expect(a.where(1)).toBe(`${file}:3`);
    a.close();
    expect((await Dataset.open(file, { skipInvalid: true })).fromCache).toBe(true);
    await expect(Dataset.open(file)).rejects.toThrow(`${file}:2: field "question" is missing or empty`);
  });
});

describe('Dataset: errors name the file and line', () => {
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['bad-record.jsonl', `${JSON.stringify(ex(0))}\n${JSON.stringify({ ...ex(1), ctxs: [] })}\n`, /bad-record\.jsonl:2: field "ctxs" must be a non-empty list/],
    ['bad-json.jsonl', `${JSON.stringify(ex(0))}\n\n{"question": "q",\n`, /bad-json\.jsonl:3: invalid JSON/],
    ['truncated.jsonl', `${JSON.stringify(ex(0))}\n${JSON.stringify(ex(1)).slice(0, 40)}`, /truncated\.jsonl:2: truncated record \(end of file\)/],
    ['bad-utf8.jsonl', Buffer.concat([Buffer.from(`${JSON.stringify(ex(0))}\n{"question": "caf`), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]), /bad-utf8\.jsonl:2: not valid UTF-8 \(byte 0xc3 at offset 17/],
    ['truncated.json', `[${JSON.stringify(ex(0))},\n${JSON.stringify(ex(1)).slice(0, 50)}`, /truncated\.json: line 2: truncated record/],
    ['truncated-close.json', `[${JSON.stringify(ex(0))}\n`, /truncated-close\.json: line 2: truncated file/],
    ['bad-record.json', `[${JSON.stringify(ex(0))},\n\n  {"question": "q", "answers": []}]`, /bad-record\.json: record 1 \(line 3\): field "answers"/],
    ['bad-utf8.json', Buffer.concat([Buffer.from(`[\n${JSON.stringify(ex(0))},\n{"question": "`), Buffer.from([0xff]), Buffer.from('"}]')]), /bad-utf8\.json: record 1 \(line 3\): not valid UTF-8/],
    ['empty.json', '  \n', /empty file/],
  ];
  for (const [name, text, re] of cases) {
    it(name, async () => {
      const file = join(dir, name);
      writeFileSync(file, text);
      await expect(Dataset.open(file)).rejects.toThrow(re);
      expect(existsSync(`${file}.idx`)).toBe(false);
    });
  }

  it('skipInvalid counts the bad records and keeps the rest', async () => {
    const file = join(dir, 'mixed.jsonl');
    writeFileSync(file, Buffer.concat([Buffer.from(`${JSON.stringify(ex(0))}\nnot json\n{"question": "\xff"}\n`), Buffer.from([0xff, 0x0a]), Buffer.from(`${JSON.stringify(ex(4))}\n${JSON.stringify(ex(5)).slice(0, 30)}`)]));
    const ds = await Dataset.open(file, { skipInvalid: true, cache: false });
    expect([ds.length, ds.skipped]).toEqual([2, 4]);
    expect(ds.getMany([0, 1])).toEqual([ex(0), ex(4)]);
  });

  it('a missing file', async () => {
    await expect(Dataset.open(join(dir, 'nope.jsonl'))).rejects.toThrow(/nope\.jsonl: no such file/);
  });
});

describe('Dataset: memory', () => {
  it('indexes a ~200 MB JSON lines file in memory far below its size', async () => {
    const file = join(dir, 'big.jsonl');
    const passage = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. '.repeat(2);
    const line = (i: number) =>
      JSON.stringify({ id: `q${i}`, question: `question number ${i}?`, target: 'yes', answers: ['yes'], ctxs: Array.from({ length: 20 }, (_, k) => ({ title: `T${k}`, text: passage, gold: k === 0 })) }) + '\n';
    const fd = openSync(file, 'w');
    let size = 0;
    let count = 0;
    while (size < 200e6) {
      const block = Array.from({ length: 1000 }, (_, k) => line(count + k)).join('');
      writeSync(fd, block);
      size += Buffer.byteLength(block);
      count += 1000;
    }
    closeSync(fd);
    globalThis.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const t0 = performance.now();
    const ds = await Dataset.open(file);
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage().rss);
    const growth = peak - before;
    console.log(`indexed ${(size / 1e6).toFixed(0)} MB, ${count} records in ${seconds.toFixed(1)} s; RSS growth ${(growth / 1e6).toFixed(0)} MB`);
    expect(ds.length).toBe(count);
    expect(growth).toBeLessThan(size / 4);
    expect(ds.get(count - 1).id).toBe(`q${count - 1}`);
    expect(ds.get(12345).question).toBe('question number 12345?');
    ds.close();
    const t1 = performance.now();
    const again = await Dataset.open(file);
    expect(again.fromCache).toBe(true);
    expect(performance.now() - t1).toBeLessThan(2000);
    expect(statSync(`${file}.idx`).size).toBe(48 + count * 20);
    again.close();
    rmSync(file);
  });
});
