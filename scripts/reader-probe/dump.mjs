// Token ids of the demo reader's training data and of bridge-probe sets, for the PyTorch probe
// (fid.py, train.py). Usage: npm run build && node scripts/reader-probe/dump.mjs [DIR]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readerText, padRows, labelRows } from '../../dist/data/batch.js';
import { generateSynth, wordOverlap } from '../../dist/data/synth.js';
import { readerTrainingExamples } from '../../dist/demo/reader-data.js';
import { tokenizerFromJson } from '../../dist/io/tokenizer.js';
import { Rng } from '../../dist/util/rng.js';

const dir = process.argv[2] ?? '/tmp/reader-probe';
mkdirSync(dir, { recursive: true });
// The demo's defaults (DEMO_DEFAULTS): seed 0, 20,000 reader questions, 200 test, 20 candidates.
const synth = generateSynth({ seed: 0, train: 20000, dev: 0, test: 200, candidates: 20 });
const tok = tokenizerFromJson(readFileSync('assets/demo-reader/tokenizer.json', 'utf8'));
const L = 48, A = 8; // the demo's passage and answer lengths
const meta = { L, A };

async function dump(name, questions) {
  const texts = [], targets = [];
  for (const q of questions) {
    for (const c of q.ctxs) texts.push(readerText(q.question, c.title, c.text));
    targets.push(q.target);
  }
  const ids = padRows(await tok.encodeBatch(texts), L, 0, 1).ids;
  const labels = labelRows(await tok.encodeBatch(targets), A, 1);
  writeFileSync(`${dir}/${name}.ids`, ids);
  writeFileSync(`${dir}/${name}.lab`, labels);
  meta[name] = { q: questions.length, n: questions[0].ctxs.length };
  console.log(`${name}: ${questions.length} questions x ${meta[name].n} passages`);
}

const answerOf = (q) => q.ctxs.find((c) => c.gold && c.has_answer);
const bridgeOf = (q) => q.ctxs.find((c) => c.gold && !c.has_answer);
/** Non-gold candidates, most like `like` first (ties: the retriever's order). */
const lookAlikes = (q, like) =>
  q.ctxs.filter((c) => !c.gold).map((c, i) => ({ c, i, l: Math.max(...like.map((g) => wordOverlap(`${g.title} ${g.text}`, c))) }))
    .sort((x, y) => y.l - x.l || x.i - y.i).map((x) => x.c);

// 1. The reader's training data, exactly as `grerank demo --build-reader` makes it:
//    `train` with --reader-data world, `renamed` with --reader-data renamed.
const train = readerTrainingExamples(synth.splits.train, { passages: 6, seed: 5 });
await dump('train', train);
await dump('renamed', readerTrainingExamples(synth.splits.train, { passages: 6, seed: 5, names: synth.names, chain: true }));
// 2. Test bridge questions: answer passage + bridge + 3 look-alikes, and answer passage + 4 look-alikes.
const bridge = synth.splits.test.filter((q) => q.type === 'bridge');
await dump('withB', bridge.map((q) => ({ ...q, ctxs: [answerOf(q), bridgeOf(q), ...lookAlikes(q, q.ctxs.filter((c) => c.gold)).slice(0, 3)] })));
await dump('noB', bridge.map((q) => ({ ...q, ctxs: [answerOf(q), ...lookAlikes(q, q.ctxs.filter((c) => c.gold)).slice(0, 4)] })));
// 3. Only chaining helps: test birthplace questions whose other passages are births of people of
//    the question's profession (log 5 = 1.61 nats without the bridge; 0 for a reader that chains).
const rng = new Rng(11);
const PROF = { director_birthplace: 'film director', star_birthplace: 'actor', writer_birthplace: 'writer' };
const births = {};
for (const q of [...synth.splits.train, ...synth.splits.test]) for (const c of q.ctxs) for (const p of Object.values(PROF)) if (/[Bb]orn/.test(c.text) && c.text.includes(p)) (births[p] ??= new Map()).set(c.text, c);
const chain = (questions, withBridge) =>
  questions.filter((q) => q.subtype in PROF).map((q) => {
    const a = answerOf(q), pool = [...births[PROF[q.subtype]].values()], others = [];
    while (others.length < (withBridge ? 4 : 5)) {
      const c = pool[rng.int(pool.length)];
      if (c.text !== a.text && !c.text.includes(q.target) && !others.includes(c)) others.push(c);
    }
    return { ...q, ctxs: rng.shuffle([a, ...(withBridge ? [bridgeOf(q)] : []), ...others]) };
  });
await dump('chainT', chain(synth.splits.test, true));
await dump('chainN', chain(synth.splits.test, false));
writeFileSync(`${dir}/meta.json`, JSON.stringify(meta));
