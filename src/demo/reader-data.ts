/**
 * The demo reader's training questions. A reader can only teach a reranker what it reads, and
 * what a small reader learns from the synthetic benchmark depends on how its questions are put
 * together: docs/demo.md ("The reader") tells the measurements behind each choice here.
 */
import { relabelEntities, wordOverlap, type SynthExample, type SynthNamePools, type SynthPassage } from '../data/synth.js';
import { Rng } from '../util/rng.js';

export interface ReaderDataOptions {
  /** Passages per question: the gold ones plus distractors. */
  passages: number;
  seed: number;
  /** Rename every example's entities (relabelEntities) with these pools; absent: the world's names. */
  names?: SynthNamePools;
  /** Add a chain example for every birthplace question (chainExample). */
  chain?: boolean;
}

/**
 * Each question with its gold passages and `passages - gold` distractors, shuffled: three
 * quarters are the candidates that share the most words with a gold passage (another person
 * "born in" another city, the same person in another film), the rest random.
 *
 * Why: a reader trained on the 1000-odd questions with all 20 candidates memorised them and
 * stopped reading (its test loss was the same with and without the gold passages). With many
 * questions and random distractors it learned to read but took a shortcut: the one passage of
 * the answer's kind ("X was born in C") gives the answer without the bridge passage. Look-alikes
 * of the gold passages make the bridge the way to tell which "born in" passage is the right one.
 */
function lookAlikeExamples(examples: readonly SynthExample[], n: number, rng: Rng): SynthExample[] {
  return examples.map((ex) => {
    const gold = ex.ctxs.filter((c) => c.gold);
    const likeness = (c: SynthPassage) => Math.max(...gold.map((g) => wordOverlap(`${g.title} ${g.text}`, c)));
    // Stable: ties keep the retriever's order.
    const others = ex.ctxs
      .filter((c) => !c.gold)
      .map((c, i) => ({ c, i, like: likeness(c) }))
      .sort((x, y) => y.like - x.like || x.i - y.i)
      .map((x) => x.c);
    const need = Math.max(0, n - gold.length);
    const hard = Math.ceil((3 * need) / 4);
    const rest = rng.shuffle(others.slice(hard));
    return { ...ex, ctxs: rng.shuffle([...gold, ...others.slice(0, hard), ...rest.slice(0, need - hard)]) };
  });
}

/** Birthplace question families and the profession their answer passage names. */
const BIRTHPLACE_PROFESSION: Record<string, string> = { director_birthplace: 'film director', star_birthplace: 'actor', writer_birthplace: 'writer' };

/**
 * For every 2-hop birthplace question ("Where was the director of F born?"): the answer passage,
 * the bridge ("D directed F") and `passages - 2` births of other people of the same profession,
 * taken from the questions' candidates. Without the bridge the answer is one of `passages - 1`
 * equally likely cities; with it, certain: only a reader that chains the two passages can do
 * better than log(passages - 1) nats.
 */
function chainExamples(examples: readonly SynthExample[], n: number, rng: Rng): SynthExample[] {
  // Per profession, each birth passage of the candidates once (by text).
  const births = new Map<string, SynthPassage[]>();
  for (const prof of Object.values(BIRTHPLACE_PROFESSION)) {
    const byText = new Map<string, SynthPassage>();
    for (const ex of examples) for (const c of ex.ctxs) if (/\b[Bb]orn\b/.test(c.text) && c.text.includes(prof)) byText.set(c.text, c);
    births.set(prof, [...byText.values()]);
  }
  const out: SynthExample[] = [];
  for (const ex of examples) {
    const prof = BIRTHPLACE_PROFESSION[ex.subtype];
    const answer = ex.ctxs.find((c) => c.gold && c.has_answer);
    const bridge = ex.ctxs.find((c) => c.indirect);
    if (!prof || ex.hops !== 2 || !answer || !bridge) continue;
    const pool = births.get(prof)!.filter((c) => c.text !== answer.text && !c.text.includes(ex.target));
    if (pool.length < n - 2) continue;
    const others = rng.shuffle(pool).slice(0, n - 2).map((c) => ({ ...c, gold: false, has_answer: false, indirect: false }));
    out.push({ ...ex, id: `${ex.id}-chain`, ctxs: rng.shuffle([answer, bridge, ...others]) });
  }
  return out;
}

/** The reader's training examples: look-alike examples, then chain examples, each renamed if asked. */
export function readerTrainingExamples(examples: readonly SynthExample[], o: ReaderDataOptions): SynthExample[] {
  const all = lookAlikeExamples(examples, o.passages, new Rng(o.seed));
  if (o.chain) all.push(...chainExamples(examples, o.passages, new Rng(o.seed + 1)));
  if (!o.names) return all;
  const rng = new Rng(o.seed + 2);
  return all.map((ex) => relabelEntities(ex, o.names!, rng));
}

/** readerTrainingExamples as JSON lines (what `train-reader` reads). */
export function readerTrainingLines(examples: readonly SynthExample[], o: ReaderDataOptions): string {
  return readerTrainingExamples(examples, o).map((ex) => JSON.stringify(ex) + '\n').join('');
}
