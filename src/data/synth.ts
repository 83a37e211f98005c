/**
 * A synthetic multi-hop QA benchmark in the training format (SPEC.md section 5), small enough for
 * tiny word-level models: a seeded world of fictional entities (countries, cities, people, films,
 * companies) whose names are built from syllables, facts between them, and questions whose
 * answers need one to three of those facts (bridge and comparison questions, as in HotpotQA).
 *
 * Every passage renders one fact. A question's gold passages are the facts of its chain; the
 * other candidates are distractors chosen to share entities and wording with the question
 * (other facts about the question's entity, facts about the bridge entity, same-relation facts
 * about similar or namesake entities), never mentioning the answer. So `has_answer` is exact and
 * `indirect = gold && !has_answer` marks the bridge passages that do not contain the answer.
 *
 * Determinism: one seed fixes everything. The world depends on the seed and the total number of
 * questions (it grows for large requests); each split draws from its own generator.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { GrerankError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { AnswerMatcher, dprTokens } from './answers.js';
import type { Example, Passage } from './examples.js';

export interface SynthOptions {
  seed: number;
  train: number;
  dev: number;
  test: number;
  /** Candidates per question (gold + distractors). */
  candidates: number;
}

export const SYNTH_DEFAULTS: SynthOptions = { seed: 0, train: 2000, dev: 200, test: 200, candidates: 20 };
/** 3-hop questions have three gold passages; at least one distractor. */
export const MIN_CANDIDATES = 4;

export const SPLITS = ['train', 'dev', 'test'] as const;
export type SplitName = (typeof SPLITS)[number];

export interface SynthPassage extends Passage {
  title: string;
  text: string;
  gold: boolean;
  has_answer: boolean;
  indirect: boolean;
}

export interface SynthExample extends Example {
  target: string;
  /** "bridge": a chain of facts through bridge entities; "comparison": two parallel facts. */
  type: 'bridge' | 'comparison';
  /** The question family, e.g. "director_birthplace" or "same_director". */
  subtype: string;
  /** Number of gold passages (2 or 3). */
  hops: number;
  /** Names of the entities the question asks about (disjoint across splits). */
  entities: string[];
  /** Names of the bridge entities, in chain order (empty for comparisons). */
  bridge: string[];
  ctxs: SynthPassage[];
}

// ---------------------------------------------------------------------------------------------
// The world

type Kind = 'country' | 'city' | 'person' | 'film' | 'company';
type Rel = 'born_in' | 'studied_in' | 'directed_by' | 'written_by' | 'music_by' | 'shot_in' | 'stars' | 'founded_by' | 'based_in' | 'located_in';

interface Industry {
  suffix: string;
  word: string;
  product: string;
}

const INDUSTRIES: Industry[] = [
  { suffix: 'Motors', word: 'car', product: 'cars and trucks' },
  { suffix: 'Foods', word: 'food', product: 'bread and snacks' },
  { suffix: 'Records', word: 'music', product: 'records and songs' },
  { suffix: 'Pictures', word: 'film', product: 'films for cinemas' },
  { suffix: 'Systems', word: 'software', product: 'software for banks' },
  { suffix: 'Airways', word: 'airline', product: 'cheap flights' },
  { suffix: 'Press', word: 'publishing', product: 'books and papers' },
  { suffix: 'Textiles', word: 'textile', product: 'cloth and clothes' },
];
const GENRES = ['drama', 'comedy', 'thriller', 'western', 'musical', 'documentary', 'romance', 'horror'];
const FOUNDER_JOBS = ['entrepreneur', 'engineer', 'banker'];
const OTHER_JOBS = ['painter', 'singer', 'architect', 'poet', 'teacher'];
const CITY_SIZES = ['small', 'large', 'busy', 'quiet', 'old'];
const REGIONS = ['north', 'south', 'east', 'west', 'centre'];
const FEATURES = ['bridges', 'markets', 'gardens', 'museums', 'festivals', 'beaches', 'churches', 'parks'];
const COUNTRY_ENDINGS = ['ia', 'land', 'ora', 'stan'];

interface Entity {
  id: number;
  kind: Kind;
  name: string;
  /** Birth, release or founding year; 0 for places. */
  year: number;
  profession: string;
  genre: string;
  industry: Industry;
  size: string;
  region: string;
  feature: string;
}

interface Fact {
  id: number;
  rel: Rel;
  s: number;
  o: number;
}

interface World {
  entities: Entity[];
  facts: Fact[];
  byKind: Record<Kind, number[]>;
  /** entity -> relation -> the fact with that subject (every relation is single-valued). */
  subjectFact: Map<number, Map<Rel, number>>;
  /** entity -> facts that mention it (as subject or object). */
  mentions: Map<number, number[]>;
  /** person -> the company they founded. */
  founded: Map<number, number>;
  /** relation -> all its facts. */
  byRel: Map<Rel, number[]>;
  /** "rel|key" -> facts of that relation whose subject shares the key (profession, genre, ...). */
  similar: Map<string, number[]>;
  /** entity -> entities of the same kind sharing a name word. */
  namesakes: Map<number, number[]>;
  sizes: Record<string, number>;
  names: SynthNamePools;
}

/** English words the templates use; generated names must not collide with them. */
function templateWords(): Set<string> {
  const texts: string[] = [];
  const ctx: Ctx = { S: 'S', O: 'O', year: 1, byear: 1, genre: GENRES.join(' '), prof: [...FOUNDER_JOBS, ...OTHER_JOBS, 'film director', 'actor', 'writer', 'composer'].join(' '), ind: INDUSTRIES.map((i) => `${i.word} ${i.suffix}`).join(' '), product: INDUSTRIES.map((i) => i.product).join(' '), size: CITY_SIZES.join(' '), region: REGIONS.join(' '), feature: FEATURES.join(' ') };
  for (const list of Object.values(PASSAGE_TEMPLATES)) for (const t of list) texts.push(t(ctx));
  for (const spec of [...BRIDGE_SPECS, ...COMPARISON_SPECS]) for (const t of spec.templates) texts.push(t('X', 'Y'));
  const words = new Set<string>(['yes', 'no']);
  for (const t of texts) for (const w of dprTokens(t)) words.add(w.toLowerCase());
  return words;
}

const ONSETS = ['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z'];
const VOWELS = ['a', 'e', 'i', 'o', 'u'];
const CODAS = ['', '', '', 'n', 'r', 'l', 's'];

/** Draws distinct capitalised syllable words (never an English template word, never reused). */
class NameMaker {
  private readonly used: Set<string>;
  constructor(
    private readonly rng: Rng,
    reserved: Set<string>,
  ) {
    this.used = new Set(reserved);
  }

  word(syllables: number, ending = ''): string {
    for (;;) {
      let w = '';
      for (let i = 0; i < syllables; i++) {
        w += ONSETS[this.rng.int(ONSETS.length)]! + VOWELS[this.rng.int(VOWELS.length)]!;
        if (i < syllables - 1 || !ending) w += CODAS[this.rng.int(CODAS.length)]!;
      }
      w += ending;
      if (this.used.has(w)) continue;
      this.used.add(w);
      return w[0]!.toUpperCase() + w.slice(1);
    }
  }

  pool(n: number, syllables: () => number): string[] {
    return Array.from({ length: n }, () => this.word(syllables()));
  }
}

const pick = <T>(rng: Rng, a: readonly T[]): T => a[rng.int(a.length)]!;
const between = (rng: Rng, lo: number, hi: number): number => lo + rng.int(Math.max(1, hi - lo + 1));

function buildWorld(rng: Rng, totalQuestions: number): World {
  const nFilms = Math.max(300, Math.ceil(totalQuestions * 0.5));
  const nDirectors = Math.ceil(nFilms / 6);
  const nActors = Math.ceil(nFilms / 4);
  const nWriters = Math.ceil(nFilms / 10);
  const nComposers = Math.ceil(nFilms / 15);
  const nCompanies = Math.max(80, Math.ceil(totalQuestions * 0.12));
  const nDirectorFounders = Math.min(Math.floor(nCompanies / 2), Math.round(nDirectors * 0.35));
  const nOtherFounders = nCompanies - nDirectorFounders;
  const nOthers = Math.max(40, Math.ceil(totalQuestions * 0.05));
  // Places grow with the square root of the request, like the name pools: the vocabulary stays small.
  const nCities = Math.max(40, Math.round(1.63 * Math.sqrt(totalQuestions)));
  const nCountries = Math.max(8, Math.ceil(nCities / 5));
  const nPersons = nDirectors + nActors + nWriters + nComposers + nOtherFounders + nOthers;

  const names = new NameMaker(rng, templateWords());
  const poolSize = (n: number) => Math.ceil(Math.sqrt(2 * n));
  const givenPool = names.pool(poolSize(nPersons), () => 2);
  const surnamePool = names.pool(poolSize(nPersons), () => 2 + rng.int(2));
  const filmPoolA = names.pool(poolSize(nFilms), () => 2);
  const filmPoolB = names.pool(poolSize(nFilms), () => 2);
  const companyRoots = names.pool(Math.ceil((2 * nCompanies) / INDUSTRIES.length), () => 2);

  const entities: Entity[] = [];
  const byKind: Record<Kind, number[]> = { country: [], city: [], person: [], film: [], company: [] };
  const blank = { year: 0, profession: '', genre: '', industry: INDUSTRIES[0]!, size: '', region: '', feature: '' };
  const add = (kind: Kind, name: string, attrs: Partial<Entity>): Entity => {
    const e: Entity = { ...blank, ...attrs, id: entities.length, kind, name };
    entities.push(e);
    byKind[kind].push(e.id);
    return e;
  };
  const pairNames = new Set<string>();
  const twoWordName = (a: string[], b: string[]): string => {
    for (;;) {
      const n = `${pick(rng, a)} ${pick(rng, b)}`;
      if (!pairNames.has(n)) {
        pairNames.add(n);
        return n;
      }
    }
  };

  const facts: Fact[] = [];
  const fact = (rel: Rel, s: number, o: number) => facts.push({ id: facts.length, rel, s, o });

  const countries = Array.from({ length: nCountries }, () => add('country', names.word(2, pick(rng, COUNTRY_ENDINGS)), {}));
  const cities = Array.from({ length: nCities }, (_, i) => {
    const c = add('city', names.word(2 + rng.int(2)), { size: pick(rng, CITY_SIZES), region: pick(rng, REGIONS), feature: pick(rng, FEATURES) });
    // Every country gets cities; the rest are spread at random.
    fact('located_in', c.id, countries[i < nCountries ? i : rng.int(nCountries)]!.id);
    return c;
  });
  const person = (profession: string, lo: number, hi: number): Entity => {
    const p = add('person', twoWordName(givenPool, surnamePool), { profession, year: between(rng, lo, hi) });
    fact('born_in', p.id, pick(rng, cities).id);
    fact('studied_in', p.id, pick(rng, cities).id);
    return p;
  };
  const directors = Array.from({ length: nDirectors }, () => person('film director', 1920, 1965));
  const actors = Array.from({ length: nActors }, () => person('actor', 1925, 1995));
  const writers = Array.from({ length: nWriters }, () => person('writer', 1910, 1980));
  const composers = Array.from({ length: nComposers }, () => person('composer', 1910, 1980));
  const otherFounders = Array.from({ length: nOtherFounders }, () => person(pick(rng, FOUNDER_JOBS), 1920, 1980));
  for (let i = 0; i < nOthers; i++) person(pick(rng, OTHER_JOBS), 1920, 1990);

  const byAge = [...actors].sort((a, b) => a.year - b.year || a.id - b.id);
  for (let i = 0; i < nFilms; i++) {
    const d = i < nDirectors ? directors[i]! : pick(rng, directors);
    const year = between(rng, Math.max(1950, d.year + 25), Math.min(2019, d.year + 60));
    const f = add('film', twoWordName(filmPoolA, filmPoolB), { year, genre: pick(rng, GENRES) });
    fact('directed_by', f.id, d.id);
    fact('written_by', f.id, pick(rng, writers).id);
    fact('music_by', f.id, pick(rng, composers).id);
    fact('shot_in', f.id, pick(rng, cities).id);
    // An adult lead where one exists (else the oldest actor).
    let adults = 0;
    while (adults < byAge.length && byAge[adults]!.year <= year - 18) adults++;
    const star = byAge[adults > 0 ? rng.int(adults) : 0]!;
    fact('stars', f.id, star.id);
  }

  const founders = [...rng.shuffle([...directors]).slice(0, nDirectorFounders), ...otherFounders];
  const film = INDUSTRIES.filter((i) => ['Pictures', 'Records', 'Press'].includes(i.suffix));
  const companyNames = new Set<string>();
  for (const p of founders) {
    // A free (root, suffix) name: the founder's kind of industry where one is left.
    const free = (i: Industry) => companyRoots.filter((r) => !companyNames.has(`${r} ${i.suffix}`));
    let industry = p.profession === 'film director' ? pick(rng, film) : pick(rng, INDUSTRIES);
    if (free(industry).length === 0) industry = pick(rng, INDUSTRIES.filter((i) => free(i).length > 0));
    const name = `${pick(rng, free(industry))} ${industry.suffix}`;
    companyNames.add(name);
    const c = add('company', name, { industry, year: between(rng, Math.max(1940, p.year + 22), Math.min(2019, p.year + 55)) });
    fact('founded_by', c.id, p.id);
    fact('based_in', c.id, pick(rng, cities).id);
  }

  // Indexes.
  const subjectFact = new Map<number, Map<Rel, number>>();
  const mentions = new Map<number, number[]>();
  const founded = new Map<number, number>();
  const byRel = new Map<Rel, number[]>();
  const similar = new Map<string, number[]>();
  const push = <K, V>(m: Map<K, V[]>, k: K, v: V) => {
    const a = m.get(k);
    if (a) a.push(v);
    else m.set(k, [v]);
  };
  for (const f of facts) {
    if (!subjectFact.has(f.s)) subjectFact.set(f.s, new Map());
    subjectFact.get(f.s)!.set(f.rel, f.id);
    push(mentions, f.s, f.id);
    push(mentions, f.o, f.id);
    push(byRel, f.rel, f.id);
    push(similar, `${f.rel}|${similarityKey(entities, f)}`, f.id);
    if (f.rel === 'founded_by') founded.set(f.o, f.s);
  }
  const namesakes = new Map<number, number[]>();
  const byWord = new Map<string, number[]>();
  for (const e of entities) for (const w of e.name.split(' ')) push(byWord, `${e.kind}|${w}`, e.id);
  for (const e of entities) {
    const set = new Set<number>();
    for (const w of e.name.split(' ')) for (const o of byWord.get(`${e.kind}|${w}`) ?? []) if (o !== e.id) set.add(o);
    namesakes.set(e.id, [...set].sort((a, b) => a - b));
  }
  return {
    entities,
    facts,
    byKind,
    subjectFact,
    mentions,
    founded,
    byRel,
    similar,
    namesakes,
    sizes: { countries: nCountries, cities: nCities, persons: nPersons, films: nFilms, companies: nCompanies, facts: facts.length },
    names: {
      given: givenPool,
      surname: surnamePool,
      filmFirst: filmPoolA,
      filmSecond: filmPoolB,
      companyRoot: companyRoots,
      city: cities.map((c) => c.name),
      country: countries.map((c) => c.name),
    },
  };
}

/** What makes two facts of one relation look alike beyond the template. */
function similarityKey(entities: Entity[], f: Fact): string {
  const s = entities[f.s]!;
  switch (f.rel) {
    case 'born_in':
    case 'studied_in':
      return s.profession;
    case 'directed_by':
    case 'written_by':
    case 'music_by':
    case 'shot_in':
    case 'stars':
      return s.genre;
    case 'founded_by':
    case 'based_in':
      return s.industry.suffix;
    case 'located_in':
      return s.size;
  }
}

// ---------------------------------------------------------------------------------------------
// Passages: one fact each, several templates per relation

interface Ctx {
  S: string;
  O: string;
  year: number;
  byear: number;
  genre: string;
  prof: string;
  ind: string;
  product: string;
  size: string;
  region: string;
  feature: string;
}

const art = (w: string): string => (/^[aeiou]/i.test(w) ? 'an ' : 'a ') + w;

const PASSAGE_TEMPLATES: Record<Rel, ((c: Ctx) => string)[]> = {
  born_in: [
    (c) => `${c.S} was born in ${c.O} in ${c.year} and later became ${art(c.prof)}.`,
    (c) => `${c.S} is ${art(c.prof)} who was born in the city of ${c.O} in ${c.year}.`,
    (c) => `Born in ${c.O} in ${c.year}, ${c.S} went on to work as ${art(c.prof)}.`,
    (c) => `The ${c.prof} ${c.S} was born in ${c.year} in ${c.O} and grew up there.`,
    (c) => `${c.S}, ${art(c.prof)}, was born in ${c.O} in the year ${c.year}.`,
  ],
  studied_in: [
    (c) => `${c.S} studied in ${c.O} for four years before becoming ${art(c.prof)}.`,
    (c) => `Before working as ${art(c.prof)}, ${c.S} went to school in ${c.O}.`,
    (c) => `The ${c.prof} ${c.S} was trained at the university of ${c.O}.`,
    (c) => `${c.S}, ${art(c.prof)}, spent the student years in the city of ${c.O}.`,
  ],
  written_by: [
    (c) => `${c.S} is a ${c.year} ${c.genre} film written by ${c.O}.`,
    (c) => `${c.O} wrote the script of ${c.S}, a ${c.genre} film released in ${c.year}.`,
    (c) => `The screenplay of the ${c.year} film ${c.S} was written by ${c.O}.`,
    (c) => `${c.S}, a ${c.genre} film from ${c.year}, is based on a story by ${c.O}.`,
  ],
  music_by: [
    (c) => `The music of the ${c.year} film ${c.S} was composed by ${c.O}.`,
    (c) => `${c.O} wrote the music for ${c.S}, a ${c.genre} film from ${c.year}.`,
    (c) => `${c.S} is a ${c.genre} film with music by the composer ${c.O}.`,
    (c) => `For the ${c.year} film ${c.S}, the songs were written by ${c.O}.`,
  ],
  directed_by: [
    (c) => `${c.S} is a ${c.year} ${c.genre} film directed by ${c.O}.`,
    (c) => `${c.O} directed ${c.S}, a ${c.genre} film released in ${c.year}.`,
    (c) => `The ${c.year} ${c.genre} film ${c.S} was directed by ${c.O}.`,
    (c) => `${c.S} is a ${c.genre} film from ${c.year} by the director ${c.O}.`,
    (c) => `Released in ${c.year}, the ${c.genre} film ${c.S} was made by ${c.O}.`,
  ],
  shot_in: [
    (c) => `${c.S} was filmed in ${c.O}, and the ${c.genre} film was released in ${c.year}.`,
    (c) => `The director of ${c.S} chose ${c.O} as the main filming location.`,
    (c) => `Most scenes of the ${c.year} film ${c.S} were shot in ${c.O}.`,
    (c) => `${c.S} was shot on location in ${c.O} during ${c.year}.`,
  ],
  stars: [
    (c) => `${c.O}, born in ${c.byear}, plays the lead role in the ${c.genre} film ${c.S}.`,
    (c) => `The ${c.year} film ${c.S} stars ${c.O} in the leading role.`,
    (c) => `${c.S} stars the actor ${c.O}, who was praised for the role.`,
    (c) => `In ${c.S}, a ${c.genre} film from ${c.year}, the lead is played by ${c.O}.`,
  ],
  founded_by: [
    (c) => `${c.S} is ${art(c.ind)} company founded by ${c.O} in ${c.year}.`,
    (c) => `${c.O} founded ${c.S}, ${art(c.ind)} company, in ${c.year}.`,
    (c) => `${c.S} was founded in ${c.year} by ${c.O} and became a known ${c.ind} company.`,
    (c) => `The ${c.ind} company ${c.S} was started by ${c.O} in ${c.year}.`,
  ],
  based_in: [
    (c) => `${c.S} has its headquarters in ${c.O} and makes ${c.product}.`,
    (c) => `${c.S}, ${art(c.ind)} company, is based in the city of ${c.O}.`,
    (c) => `The main office of ${c.S} is in ${c.O}, where the company opened in ${c.year}.`,
    (c) => `${c.S} moved its headquarters to ${c.O} soon after it was founded in ${c.year}.`,
  ],
  located_in: [
    (c) => `${c.S} is ${art(c.size)} city in the ${c.region} of ${c.O}, known for its ${c.feature}.`,
    (c) => `The ${c.size} city of ${c.S} lies in ${c.O} and is known for its ${c.feature}.`,
    (c) => `${c.S}, a city in the ${c.region} of ${c.O}, is famous for its ${c.feature}.`,
    (c) => `${c.S} is one of the ${c.size} cities of ${c.O} and has fine ${c.feature}.`,
  ],
};

interface Rendered {
  fact: number;
  title: string;
  text: string;
}

function render(w: World, factId: number, rng: Rng): Rendered {
  const f = w.facts[factId]!;
  const s = w.entities[f.s]!;
  const o = w.entities[f.o]!;
  const ctx: Ctx = {
    S: s.name,
    O: o.name,
    year: s.year,
    byear: o.year,
    genre: s.genre,
    prof: s.profession,
    ind: s.industry.word,
    product: s.industry.product,
    size: s.size,
    region: s.region,
    feature: s.feature,
  };
  return { fact: factId, title: s.name, text: pick(rng, PASSAGE_TEMPLATES[f.rel])(ctx) };
}

// ---------------------------------------------------------------------------------------------
// Questions

interface Draft {
  type: 'bridge' | 'comparison';
  subtype: string;
  question: string;
  answer: string;
  /** The entity whose name is the answer (null for yes/no). */
  answerEntity: number | null;
  entities: number[];
  bridge: number[];
  /** Entities the gold facts lead to, used to pick distractors (bridge entities, directors compared...). */
  related: number[];
  gold: number[];
  /** Gold facts whose passage must contain the answer. */
  answerFacts: number[];
}

/** One step of a chain: a relation followed from subject to object, or (inverse) back. */
type Step = Rel | 'founder_of';

interface BridgeSpec {
  subtype: string;
  kind: Kind;
  chain: Step[];
  weight: number;
  templates: ((x: string, y: string) => string)[];
}

interface ComparisonSpec {
  subtype: string;
  kind: Kind;
  rel: Rel;
  /** "earlier": the entity with the smaller year; "same": yes/no on the fact's object. */
  mode: 'earlier' | 'same';
  weight: number;
  templates: ((x: string, y: string) => string)[];
}

const BRIDGE_SPECS: BridgeSpec[] = [
  {
    subtype: 'director_birthplace',
    kind: 'film',
    chain: ['directed_by', 'born_in'],
    weight: 0.11,
    templates: [(x) => `Where was the director of ${x} born?`, (x) => `In which city was the director of ${x} born?`, (x) => `What is the birthplace of the person who directed ${x}?`, (x) => `The director of ${x} was born in which city?`],
  },
  {
    subtype: 'director_company',
    kind: 'film',
    chain: ['directed_by', 'founder_of'],
    weight: 0.05,
    templates: [(x) => `Which company was founded by the director of ${x}?`, (x) => `What company did the director of ${x} found?`, (x) => `The person who directed ${x} founded which company?`],
  },
  {
    subtype: 'star_birthplace',
    kind: 'film',
    chain: ['stars', 'born_in'],
    weight: 0.07,
    templates: [(x) => `Where was the lead actor of ${x} born?`, (x) => `In which city was the star of ${x} born?`, (x) => `What is the birthplace of the actor who plays the lead in ${x}?`],
  },
  {
    subtype: 'writer_birthplace',
    kind: 'film',
    chain: ['written_by', 'born_in'],
    weight: 0.06,
    templates: [(x) => `Where was the writer of ${x} born?`, (x) => `In which city was the person who wrote ${x} born?`, (x) => `What is the birthplace of the screenwriter of ${x}?`],
  },
  {
    subtype: 'director_study',
    kind: 'film',
    chain: ['directed_by', 'studied_in'],
    weight: 0.05,
    templates: [(x) => `In which city did the director of ${x} study?`, (x) => `Where did the person who directed ${x} go to school?`, (x) => `The director of ${x} studied in which city?`],
  },
  {
    subtype: 'founder_birthplace',
    kind: 'company',
    chain: ['founded_by', 'born_in'],
    weight: 0.07,
    templates: [(x) => `Where was the founder of ${x} born?`, (x) => `In which city was the person who founded ${x} born?`, (x) => `What is the birthplace of the founder of ${x}?`],
  },
  {
    subtype: 'person_country',
    kind: 'person',
    chain: ['born_in', 'located_in'],
    weight: 0.07,
    templates: [(x) => `In which country was ${x} born?`, (x) => `${x} was born in a city of which country?`, (x) => `What country is the birthplace of ${x} in?`],
  },
  {
    subtype: 'film_country',
    kind: 'film',
    chain: ['shot_in', 'located_in'],
    weight: 0.05,
    templates: [(x) => `In which country was ${x} filmed?`, (x) => `${x} was shot in a city of which country?`, (x) => `Which country is the filming location of ${x} in?`],
  },
  {
    subtype: 'company_country',
    kind: 'company',
    chain: ['based_in', 'located_in'],
    weight: 0.05,
    templates: [(x) => `In which country does ${x} have its headquarters?`, (x) => `Which country is ${x} based in?`, (x) => `${x} has its main office in which country?`],
  },
  {
    subtype: 'director_country',
    kind: 'film',
    chain: ['directed_by', 'born_in', 'located_in'],
    weight: 0.08,
    templates: [(x) => `In which country was the director of ${x} born?`, (x) => `The director of ${x} was born in which country?`, (x) => `What country does the director of ${x} come from?`],
  },
  {
    subtype: 'founder_country',
    kind: 'company',
    chain: ['founded_by', 'born_in', 'located_in'],
    weight: 0.05,
    templates: [(x) => `In which country was the founder of ${x} born?`, (x) => `The person who founded ${x} was born in which country?`],
  },
  {
    subtype: 'star_country',
    kind: 'film',
    chain: ['stars', 'born_in', 'located_in'],
    weight: 0.04,
    templates: [(x) => `In which country was the lead actor of ${x} born?`, (x) => `The star of ${x} was born in which country?`],
  },
];

const COMPARISON_SPECS: ComparisonSpec[] = [
  {
    subtype: 'film_earlier',
    kind: 'film',
    rel: 'directed_by',
    mode: 'earlier',
    weight: 0.06,
    templates: [(x, y) => `Which film came out first, ${x} or ${y}?`, (x, y) => `Which was released earlier, ${x} or ${y}?`, (x, y) => `Which film is older, ${x} or ${y}?`],
  },
  {
    subtype: 'same_director',
    kind: 'film',
    rel: 'directed_by',
    mode: 'same',
    weight: 0.06,
    templates: [(x, y) => `Were ${x} and ${y} directed by the same person?`, (x, y) => `Do ${x} and ${y} have the same director?`, (x, y) => `Did the same director make ${x} and ${y}?`],
  },
  {
    subtype: 'person_older',
    kind: 'person',
    rel: 'born_in',
    mode: 'earlier',
    weight: 0.05,
    templates: [(x, y) => `Who was born first, ${x} or ${y}?`, (x, y) => `Which person is older, ${x} or ${y}?`],
  },
  {
    subtype: 'same_birthplace',
    kind: 'person',
    rel: 'born_in',
    mode: 'same',
    weight: 0.04,
    templates: [(x, y) => `Were ${x} and ${y} born in the same city?`, (x, y) => `Do ${x} and ${y} come from the same city?`],
  },
  {
    subtype: 'company_earlier',
    kind: 'company',
    rel: 'founded_by',
    mode: 'earlier',
    weight: 0.04,
    templates: [(x, y) => `Which company was founded first, ${x} or ${y}?`, (x, y) => `Which company is older, ${x} or ${y}?`],
  },
];

type Spec = { bridge: BridgeSpec } | { comparison: ComparisonSpec };
const ALL_SPECS: Spec[] = [...BRIDGE_SPECS.map((bridge) => ({ bridge })), ...COMPARISON_SPECS.map((comparison) => ({ comparison }))];
const specWeight = (s: Spec): number => ('bridge' in s ? s.bridge.weight : s.comparison.weight);

/** Question subtypes with their question templates (documentation and tests). */
export const SYNTH_SUBTYPES: { type: 'bridge' | 'comparison'; subtype: string; hops: number; weight: number }[] = [
  ...BRIDGE_SPECS.map((s) => ({ type: 'bridge' as const, subtype: s.subtype, hops: s.chain.length, weight: s.weight })),
  ...COMPARISON_SPECS.map((s) => ({ type: 'comparison' as const, subtype: s.subtype, hops: 2, weight: s.weight })),
];

/** The entities one split may ask about, with groups for yes-answers of "same" comparisons. */
interface SplitPool {
  byKind: Record<Kind, number[]>;
  /** "rel" -> groups (by the fact's object) of at least two pool entities. */
  sameGroups: Map<Rel, number[][]>;
}

function makePool(w: World, byKind: Record<Kind, number[]>): SplitPool {
  const sameGroups = new Map<Rel, number[][]>();
  for (const spec of COMPARISON_SPECS) {
    if (spec.mode !== 'same' || sameGroups.has(spec.rel)) continue;
    const groups = new Map<number, number[]>();
    for (const e of byKind[spec.kind]) {
      const o = w.facts[w.subjectFact.get(e)!.get(spec.rel)!]!.o;
      if (!groups.has(o)) groups.set(o, []);
      groups.get(o)!.push(e);
    }
    sameGroups.set(
      spec.rel,
      [...groups.keys()].sort((a, b) => a - b).map((k) => groups.get(k)!).filter((g) => g.length >= 2),
    );
  }
  return { byKind, sameGroups };
}

function draftBridge(w: World, spec: BridgeSpec, pool: SplitPool, rng: Rng): Draft | null {
  const candidates = pool.byKind[spec.kind];
  if (candidates.length === 0) return null;
  const x = pick(rng, candidates);
  const gold: number[] = [];
  const nodes = [x];
  let cur = x;
  for (const step of spec.chain) {
    let fid: number | undefined;
    let next: number;
    if (step === 'founder_of') {
      const company = w.founded.get(cur);
      if (company === undefined) return null;
      fid = w.subjectFact.get(company)!.get('founded_by');
      next = company;
    } else {
      fid = w.subjectFact.get(cur)?.get(step);
      if (fid === undefined) return null;
      next = w.facts[fid]!.o;
    }
    gold.push(fid!);
    nodes.push(next);
    cur = next;
  }
  const answerEntity = nodes[nodes.length - 1]!;
  const name = w.entities[x]!.name;
  return {
    type: 'bridge',
    subtype: spec.subtype,
    question: pick(rng, spec.templates)(name, ''),
    answer: w.entities[answerEntity]!.name,
    answerEntity,
    entities: [x],
    bridge: nodes.slice(1, -1),
    related: nodes.slice(1, -1),
    gold,
    answerFacts: [gold[gold.length - 1]!],
  };
}

function draftComparison(w: World, spec: ComparisonSpec, pool: SplitPool, rng: Rng): Draft | null {
  const candidates = pool.byKind[spec.kind];
  if (candidates.length < 2) return null;
  const objectOf = (e: number) => w.facts[w.subjectFact.get(e)!.get(spec.rel)!]!.o;
  let a: number;
  let b: number;
  let wantSame = false;
  if (spec.mode === 'same' && rng.uniform() < 0.5) {
    const groups = pool.sameGroups.get(spec.rel) ?? [];
    if (groups.length === 0) return null;
    const g = rng.shuffle([...pick(rng, groups)]);
    [a, b] = [g[0]!, g[1]!];
    wantSame = true;
  } else {
    a = pick(rng, candidates);
    b = pick(rng, candidates);
  }
  if (a === b) return null;
  const ea = w.entities[a]!;
  const eb = w.entities[b]!;
  const same = objectOf(a) === objectOf(b);
  if (spec.mode === 'same' && same !== wantSame) return null;
  if (spec.mode === 'earlier' && ea.year === eb.year) return null;
  const fa = w.subjectFact.get(a)!.get(spec.rel)!;
  const fb = w.subjectFact.get(b)!.get(spec.rel)!;
  let answer: string;
  let answerEntity: number | null = null;
  let answerFacts: number[] = [];
  if (spec.mode === 'same') {
    answer = same ? 'yes' : 'no';
  } else {
    const first = ea.year < eb.year ? a : b;
    answerEntity = first;
    answer = w.entities[first]!.name;
    answerFacts = [first === a ? fa : fb];
  }
  return {
    type: 'comparison',
    subtype: spec.subtype,
    question: pick(rng, spec.templates)(ea.name, eb.name),
    answer,
    answerEntity,
    entities: [a, b],
    bridge: [],
    related: [...new Set([objectOf(a), objectOf(b)])],
    gold: [fa, fb],
    answerFacts,
  };
}

// ---------------------------------------------------------------------------------------------
// Candidates

/** Share of the distractors taken from each source, in this order; the rest is filled at random. */
const DISTRACTOR_MIX = { question: 0.25, bridge: 0.25, namesake: 0.15, relation: 0.2 };

/**
 * Picks `n` distractor facts for a draft: other facts about the question's entities, facts about
 * the bridge/related entities, facts about namesakes (entities sharing a name word), facts of the
 * gold relations about similar entities, then random facts. None mentions the answer; at most
 * ceil(n/6) share a gold passage's relation (so a ranker that knows which relation a question
 * needs can still put the gold passages in its top 5) and at most ceil(n/3.5) any other relation.
 */
function pickDistractors(w: World, d: Draft, n: number, rng: Rng, contains: (r: Rendered) => boolean): Rendered[] | null {
  const used = new Set<number>(d.gold);
  const goldRels = new Set(d.gold.map((f) => w.facts[f]!.rel));
  const capGold = Math.max(1, Math.ceil(n / 6));
  const capOther = Math.max(2, Math.ceil(n / 3.5));
  const relCount = new Map<Rel, number>();
  const out: Rendered[] = [];
  const tryAdd = (fid: number, capped: boolean): boolean => {
    if (used.has(fid)) return false;
    const f = w.facts[fid]!;
    if (d.answerEntity !== null && (f.s === d.answerEntity || f.o === d.answerEntity)) return false;
    const count = relCount.get(f.rel) ?? 0;
    if (capped && count >= (goldRels.has(f.rel) ? capGold : capOther)) return false;
    const r = render(w, fid, rng);
    if (contains(r)) return false;
    used.add(fid);
    relCount.set(f.rel, count + 1);
    out.push(r);
    return true;
  };
  const factsOf = (ents: number[], limit = Infinity): number[] => {
    const s = new Set<number>();
    for (const e of ents) for (const f of w.mentions.get(e) ?? []) if (s.size < limit) s.add(f);
    return rng.shuffle([...s].sort((a, b) => a - b));
  };
  const namesakes = [...new Set(d.entities.flatMap((e) => w.namesakes.get(e) ?? []))].sort((a, b) => a - b);
  const relation: number[] = [];
  for (const g of d.gold) {
    const f = w.facts[g]!;
    const sim = w.similar.get(`${f.rel}|${similarityKey(w.entities, f)}`) ?? [];
    const all = w.byRel.get(f.rel)!;
    for (let i = 0; i < 2 * n; i++) relation.push(i % 2 === 0 ? pick(rng, sim) : pick(rng, all));
  }
  const sources: [number[], number][] = [
    [factsOf(d.entities), DISTRACTOR_MIX.question],
    [factsOf(d.related, 400), DISTRACTOR_MIX.bridge],
    [factsOf(rng.shuffle(namesakes).slice(0, 12)), DISTRACTOR_MIX.namesake],
    [rng.shuffle(relation), DISTRACTOR_MIX.relation],
  ];
  for (const [facts, share] of sources) {
    const quota = Math.round(share * n);
    let taken = 0;
    for (const f of facts) {
      if (taken >= quota || out.length >= n) break;
      if (tryAdd(f, true)) taken++;
    }
  }
  for (const [facts] of sources) for (const f of facts) if (out.length < n) tryAdd(f, true);
  for (let tries = 0; out.length < n && tries < 50 * n; tries++) tryAdd(rng.int(w.facts.length), tries < 40 * n);
  return out.length === n ? out : null;
}

function assemble(w: World, d: Draft, n: number, rng: Rng, id: string): SynthExample | null {
  const matcher = new AnswerMatcher([d.answer]);
  const contains = (r: Rendered) => matcher.matches(r.text) || matcher.matches(r.title);
  const golds: Rendered[] = [];
  for (const fid of d.gold) {
    const needsAnswer = d.answerFacts.includes(fid);
    let ok: Rendered | null = null;
    for (let t = 0; t < 10 && !ok; t++) {
      const r = render(w, fid, rng);
      if (needsAnswer ? matcher.matches(r.text) : !contains(r)) ok = r;
    }
    if (!ok) return null;
    golds.push(ok);
  }
  const distractors = pickDistractors(w, d, n - golds.length, rng, contains);
  if (!distractors) return null;
  const goldFacts = new Set(d.gold);
  const ctxs: SynthPassage[] = rng.shuffle([...golds, ...distractors]).map((r) => {
    const gold = goldFacts.has(r.fact);
    const has = matcher.matches(r.text);
    return { title: r.title, text: r.text, gold, has_answer: has, indirect: gold && !has };
  });
  // The invariants the benchmark promises; a violation is a generator bug.
  for (const c of ctxs) if (c.has_answer && !c.gold) throw new Error(`synth: distractor contains the answer in ${id}`);
  if (d.answerFacts.length > 0 && !ctxs.some((c) => c.has_answer)) throw new Error(`synth: no passage contains the answer in ${id}`);
  const name = (e: number) => w.entities[e]!.name;
  return {
    id,
    question: d.question,
    target: d.answer,
    answers: [d.answer],
    type: d.type,
    subtype: d.subtype,
    hops: d.gold.length,
    entities: d.entities.map(name),
    bridge: d.bridge.map(name),
    ctxs,
  };
}

function generateSplit(w: World, split: SplitName, count: number, pool: SplitPool, candidates: number, rng: Rng): SynthExample[] {
  const out: SynthExample[] = [];
  const seen = new Set<string>();
  const alive = ALL_SPECS.map(() => true);
  const failures = ALL_SPECS.map(() => 0);
  const width = Math.max(5, String(count).length);
  while (out.length < count) {
    let total = 0;
    ALL_SPECS.forEach((s, i) => alive[i] && (total += specWeight(s)));
    if (total === 0) throw new GrerankError(`synth: cannot draw ${count} distinct ${split} questions from this world (got ${out.length}); ask for fewer`);
    let u = rng.uniform() * total;
    let k = 0;
    for (; k < ALL_SPECS.length - 1; k++) {
      if (!alive[k]) continue;
      u -= specWeight(ALL_SPECS[k]!);
      if (u < 0) break;
    }
    while (!alive[k]) k--;
    const spec = ALL_SPECS[k]!;
    // Retry the chosen family (so rarer families keep their share), and give up on a family that
    // keeps failing (its pool is exhausted).
    let ex: SynthExample | null = null;
    let key = '';
    for (let attempt = 0; attempt < 100 && !ex; attempt++) {
      const draft = 'bridge' in spec ? draftBridge(w, spec.bridge, pool, rng) : draftComparison(w, spec.comparison, pool, rng);
      if (!draft) continue;
      key = `${draft.subtype}|${[...draft.entities].sort((a, b) => a - b).join(',')}`;
      if (seen.has(key)) continue;
      ex = assemble(w, draft, candidates, rng, `${split}-${String(out.length).padStart(width, '0')}`);
    }
    if (!ex) {
      if (++failures[k]! >= 5) alive[k] = false;
      continue;
    }
    failures[k] = 0;
    seen.add(key);
    out.push(ex);
  }
  return out;
}

/** Splits each askable kind's entities among the splits, in proportion to their question counts. */
function allocatePools(w: World, counts: Record<SplitName, number>, rng: Rng): Record<SplitName, SplitPool> {
  const total = SPLITS.reduce((s, k) => s + counts[k], 0);
  const byKind = Object.fromEntries(SPLITS.map((s) => [s, { country: [], city: [], person: [], film: [], company: [] } as Record<Kind, number[]>])) as Record<SplitName, Record<Kind, number[]>>;
  for (const kind of ['person', 'film', 'company'] as const) {
    const ids = rng.shuffle([...w.byKind[kind]]);
    const min = Math.min(20, Math.floor(ids.length / 3));
    const sizes = SPLITS.map((s) => (counts[s] === 0 ? 0 : Math.max(min, Math.round((ids.length * counts[s]) / total))));
    while (sizes.reduce((a, b) => a + b, 0) > ids.length) sizes[sizes.indexOf(Math.max(...sizes))]!--;
    let at = 0;
    SPLITS.forEach((s, i) => {
      byKind[s][kind] = ids.slice(at, at + sizes[i]!).sort((a, b) => a - b);
      at += sizes[i]!;
    });
  }
  return Object.fromEntries(SPLITS.map((s) => [s, makePool(w, byKind[s])])) as Record<SplitName, SplitPool>;
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** Lower-cased word tokens (letters/digits), as the overlap statistics count them. */
export function synthWords(text: string): string[] {
  return dprTokens(text.normalize('NFD'))
    .filter((t) => /[\p{L}\p{N}]/u.test(t))
    .map((t) => t.toLowerCase());
}

/** Number of distinct question words that also occur in the passage (title and text). */
export function wordOverlap(question: string, p: { title: string; text: string }): number {
  const q = new Set(synthWords(question));
  const seen = new Set<string>();
  for (const w of synthWords(`${p.title} ${p.text}`)) if (q.has(w)) seen.add(w);
  return seen.size;
}

interface Summary {
  min: number;
  mean: number;
  max: number;
}

const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;
function summary(xs: number[]): Summary {
  if (xs.length === 0) return { min: 0, mean: 0, max: 0 };
  let s = 0;
  let mn = Infinity;
  let mx = -Infinity;
  for (const x of xs) {
    s += x;
    mn = Math.min(mn, x);
    mx = Math.max(mx, x);
  }
  return { min: mn, mean: round4(s / xs.length), max: mx };
}
const mean = (xs: number[]): number => (xs.length ? round4(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);

export interface SplitStats {
  questions: number;
  by_type: Record<string, number>;
  by_subtype: Record<string, number>;
  by_hops: Record<string, number>;
  yes_no: { yes: number; no: number };
  question_entities: number;
  candidates: number;
  gold: number;
  indirect: number;
  has_answer: number;
  gold_per_question: number;
  indirect_per_question: number;
  /** Mean distinct-word overlap with the question (all words, lower-cased, title + text). */
  overlap: {
    answer_gold: number;
    indirect_gold: number;
    distractor: number;
    /** Mean over questions of the largest distractor overlap. */
    top_distractor: number;
    /** Share of questions with an indirect gold passage whose overlap is above every distractor's. */
    indirect_above_all_distractors: number;
    /** Recall@5 of ranking the candidates by overlap (ties in candidate order). */
    lexical_recall_at_5: { gold: number; answer: number; indirect: number };
  };
  /** Share of distractors that mention a question or bridge entity or share a word of their names. */
  distractors_sharing_entities: number;
}

export interface SynthStats {
  seed: number;
  candidates: number;
  world: Record<string, number>;
  splits: Record<SplitName, SplitStats>;
  vocabulary: { words: number; lowercased: number; unseen_in_train: Record<'dev' | 'test', number> };
  lengths: { question_words: Summary; passage_words: Summary };
}

function splitStats(examples: SynthExample[], candidates: number): SplitStats {
  const by_type: Record<string, number> = {};
  const by_subtype: Record<string, number> = {};
  const by_hops: Record<string, number> = {};
  const yes_no = { yes: 0, no: 0 };
  const ents = new Set<string>();
  let gold = 0;
  let indirect = 0;
  let has = 0;
  const ovAnswer: number[] = [];
  const ovIndirect: number[] = [];
  const ovDistractor: number[] = [];
  const ovTop: number[] = [];
  let indirectQuestions = 0;
  let indirectAbove = 0;
  const recallGold: number[] = [];
  const recallIndirect: number[] = [];
  const recallAnswer: number[] = [];
  let sharing = 0;
  let distractors = 0;
  for (const ex of examples) {
    by_type[ex.type] = (by_type[ex.type] ?? 0) + 1;
    by_subtype[ex.subtype] = (by_subtype[ex.subtype] ?? 0) + 1;
    by_hops[ex.hops] = (by_hops[ex.hops] ?? 0) + 1;
    if (ex.target === 'yes') yes_no.yes++;
    if (ex.target === 'no') yes_no.no++;
    for (const e of ex.entities) ents.add(e);
    const nameWords = new Set([...ex.entities, ...ex.bridge].flatMap((n) => synthWords(n)));
    const ov = ex.ctxs.map((c) => wordOverlap(ex.question, c));
    let top = 0;
    let topIndirect = -1;
    ex.ctxs.forEach((c, i) => {
      if (c.gold) gold++;
      if (c.indirect) indirect++;
      if (c.has_answer) has++;
      if (c.has_answer) ovAnswer.push(ov[i]!);
      if (c.indirect) {
        ovIndirect.push(ov[i]!);
        topIndirect = Math.max(topIndirect, ov[i]!);
      }
      if (!c.gold) {
        ovDistractor.push(ov[i]!);
        top = Math.max(top, ov[i]!);
        distractors++;
        if (synthWords(`${c.title} ${c.text}`).some((w) => nameWords.has(w))) sharing++;
      }
    });
    ovTop.push(top);
    if (topIndirect >= 0) {
      indirectQuestions++;
      if (topIndirect > top) indirectAbove++;
    }
    const order = ex.ctxs.map((_, i) => i).sort((a, b) => ov[b]! - ov[a]! || a - b);
    const top5 = new Set(order.slice(0, 5));
    const frac = (pred: (c: SynthPassage) => boolean) => {
      const idx = ex.ctxs.map((c, i) => (pred(c) ? i : -1)).filter((i) => i >= 0);
      return idx.length ? idx.filter((i) => top5.has(i)).length / idx.length : -1;
    };
    recallGold.push(frac((c) => c.gold));
    const ra = frac((c) => c.has_answer);
    if (ra >= 0) recallAnswer.push(ra);
    const ri = frac((c) => c.indirect);
    if (ri >= 0) recallIndirect.push(ri);
  }
  const n = examples.length;
  return {
    questions: n,
    by_type,
    by_subtype: Object.fromEntries(Object.entries(by_subtype).sort(([a], [b]) => (a < b ? -1 : 1))),
    by_hops,
    yes_no,
    question_entities: ents.size,
    candidates,
    gold,
    indirect,
    has_answer: has,
    gold_per_question: n ? round4(gold / n) : 0,
    indirect_per_question: n ? round4(indirect / n) : 0,
    overlap: {
      answer_gold: mean(ovAnswer),
      indirect_gold: mean(ovIndirect),
      distractor: mean(ovDistractor),
      top_distractor: mean(ovTop),
      indirect_above_all_distractors: indirectQuestions ? round4(indirectAbove / indirectQuestions) : 0,
      lexical_recall_at_5: { gold: mean(recallGold), answer: mean(recallAnswer), indirect: mean(recallIndirect) },
    },
    distractors_sharing_entities: distractors ? round4(sharing / distractors) : 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Generation and output

/**
 * The words entity names are made of, by pool. Every word belongs to exactly one pool and is never
 * a template word, so a word-for-word substitution within the pools (relabelEntities) renames
 * entities without touching anything else.
 */
export interface SynthNamePools {
  given: string[];
  surname: string[];
  filmFirst: string[];
  filmSecond: string[];
  companyRoot: string[];
  city: string[];
  country: string[];
}

export interface SynthResult {
  splits: Record<SplitName, SynthExample[]>;
  names: SynthNamePools;
  /** Every token used (questions, answers, titles, texts), most frequent first, case kept. */
  vocab: string[];
  stats: SynthStats;
}

export function checkSynthOptions(o: SynthOptions): void {
  for (const k of ['seed', 'train', 'dev', 'test', 'candidates'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new GrerankError(`--${k} must be a non-negative integer, got ${o[k]}`);
  }
  if (o.seed > 0xffffffff) throw new GrerankError(`--seed must be below 2^32, got ${o.seed}`);
  if (o.candidates < MIN_CANDIDATES) throw new GrerankError(`--candidates must be at least ${MIN_CANDIDATES} (3-hop questions have 3 gold passages), got ${o.candidates}`);
  if (o.candidates > 200) throw new GrerankError(`--candidates must be at most 200, got ${o.candidates}`);
  if (o.train + o.dev + o.test === 0) throw new GrerankError('nothing to generate: --train, --dev and --test are all 0');
  if (o.train + o.dev + o.test > 1_000_000) throw new GrerankError('at most 1,000,000 questions in all');
}

export function generateSynth(opts: Partial<SynthOptions> = {}): SynthResult {
  const o: SynthOptions = { ...SYNTH_DEFAULTS, ...opts };
  checkSynthOptions(o);
  const base = new Rng(o.seed);
  const worldRng = new Rng(base.nextUint32());
  const poolRng = new Rng(base.nextUint32());
  const splitRngs = SPLITS.map(() => new Rng(base.nextUint32()));
  const counts = { train: o.train, dev: o.dev, test: o.test };
  const world = buildWorld(worldRng, o.train + o.dev + o.test);
  const pools = allocatePools(world, counts, poolRng);
  const splits = Object.fromEntries(SPLITS.map((s, i) => [s, generateSplit(world, s, counts[s], pools[s], o.candidates, splitRngs[i]!)])) as Record<SplitName, SynthExample[]>;

  // Vocabulary and lengths.
  const freq = new Map<string, number>();
  const splitWords = Object.fromEntries(SPLITS.map((s) => [s, new Set<string>()])) as Record<SplitName, Set<string>>;
  const qLen: number[] = [];
  const pLen: number[] = [];
  for (const s of SPLITS) {
    for (const ex of splits[s]) {
      const texts = [ex.question, ...ex.answers, ...ex.ctxs.flatMap((c) => [c.title, c.text])];
      for (const t of texts) {
        for (const w of dprTokens(t)) {
          freq.set(w, (freq.get(w) ?? 0) + 1);
          splitWords[s].add(w);
        }
      }
      qLen.push(synthWords(ex.question).length);
      for (const c of ex.ctxs) pLen.push(synthWords(c.text).length);
    }
  }
  const vocab = [...freq.keys()].sort((a, b) => freq.get(b)! - freq.get(a)! || (a < b ? -1 : a > b ? 1 : 0));
  const unseen = (s: SplitName) => [...splitWords[s]].filter((w) => !splitWords.train.has(w)).length;
  const stats: SynthStats = {
    seed: o.seed,
    candidates: o.candidates,
    world: world.sizes,
    splits: Object.fromEntries(SPLITS.map((s) => [s, splitStats(splits[s], o.candidates)])) as Record<SplitName, SplitStats>,
    vocabulary: { words: vocab.length, lowercased: new Set(vocab.map((w) => w.toLowerCase())).size, unseen_in_train: { dev: unseen('dev'), test: unseen('test') } },
    lengths: { question_words: summary(qLen), passage_words: summary(pLen) },
  };
  return { splits, vocab, stats, names: world.names };
}

/**
 * The example with its entities renamed: within each name pool a random permutation, the same
 * for the question, answers, titles and texts, so the example says the same thing about other
 * names (labels and answers stay right: the substitution is one-to-one and the answer is renamed
 * with its passage). Each call draws new permutations, so the facts an example states hold only
 * for that example.
 *
 * Why: a small reader trained on the world's facts memorises them (film -> director -> city)
 * instead of reading, and memorised facts do not carry over to the test questions' entities
 * (docs/demo.md). Renamed examples can only be answered by reading the passages, chaining
 * through the bridge passage where the question needs it.
 */
export function relabelEntities(ex: SynthExample, pools: SynthNamePools, rng: Rng): SynthExample {
  const map = new Map<string, string>();
  for (const pool of Object.values(pools) as string[][]) {
    const to = rng.shuffle([...pool]);
    pool.forEach((w, i) => map.set(w, to[i]!));
  }
  const sub = (t: string) => t.replace(/[\p{L}\p{N}]+/gu, (w) => map.get(w) ?? w);
  return {
    ...ex,
    question: sub(ex.question),
    target: sub(ex.target),
    answers: ex.answers.map(sub),
    entities: ex.entities.map(sub),
    bridge: ex.bridge.map(sub),
    ctxs: ex.ctxs.map((c) => ({ ...c, title: sub(c.title), text: sub(c.text) })),
  };
}

/** The files of one run, by name. */
export function synthFiles(r: SynthResult): Record<string, string> {
  const files: Record<string, string> = {};
  for (const s of SPLITS) files[`${s}.jsonl`] = r.splits[s].map((ex) => JSON.stringify(ex) + '\n').join('');
  files['vocab.txt'] = r.vocab.map((w) => w + '\n').join('');
  files['stats.json'] = JSON.stringify(r.stats, null, 2) + '\n';
  return files;
}

/**
 * Writes the run to `dir` so that a failure never leaves partial files: a new directory is
 * written beside it under a temporary name and renamed into place; into an existing directory
 * every file is written under a temporary name first, then all are renamed.
 */
export function writeSynth(dir: string, r: SynthResult): string[] {
  const files = synthFiles(r);
  const names = Object.keys(files);
  const tag = `.tmp-${process.pid}-${Date.now()}`;
  try {
    if (!existsSync(dir)) {
      mkdirSync(dirname(dir), { recursive: true });
      const tmp = join(dirname(dir), `.${basename(dir)}${tag}`);
      mkdirSync(tmp);
      try {
        for (const n of names) writeFileSync(join(tmp, n), files[n]!);
        renameSync(tmp, dir);
      } catch (e) {
        rmSync(tmp, { recursive: true, force: true });
        throw e;
      }
    } else {
      const tmps = names.map((n) => join(dir, `.${n}${tag}`));
      try {
        names.forEach((n, i) => writeFileSync(tmps[i]!, files[n]!));
        names.forEach((n, i) => renameSync(tmps[i]!, join(dir, n)));
      } catch (e) {
        for (const t of tmps) rmSync(t, { force: true });
        throw e;
      }
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code && ['EACCES', 'ENOTDIR', 'EEXIST', 'ENOSPC', 'EROFS', 'EPERM', 'EISDIR'].includes(err.code)) {
      throw new GrerankError(`${dir}: cannot write the benchmark (${err.code}: ${err.message})`);
    }
    throw e;
  }
  return names;
}

/** The human summary printed on stderr. */
export function formatSynthSummary(st: SynthStats): string {
  const lines: string[] = [];
  lines.push(`world: ${Object.entries(st.world).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  lines.push('split  questions  bridge(2-hop/3-hop)  comparison(yes/no)  gold  indirect  has_answer  lexical R@5 gold/answer/indirect');
  for (const s of SPLITS) {
    const x = st.splits[s];
    const br = `${x.by_type.bridge ?? 0} (${(x.by_type.bridge ?? 0) - (x.by_hops['3'] ?? 0)}/${x.by_hops['3'] ?? 0})`;
    const cmp = `${x.by_type.comparison ?? 0} (${x.yes_no.yes}/${x.yes_no.no})`;
    lines.push(
      `${s.padEnd(5)}  ${String(x.questions).padStart(9)}  ${br.padStart(19)}  ${cmp.padStart(18)}  ${String(x.gold).padStart(4)}  ${String(x.indirect).padStart(8)}  ${String(x.has_answer).padStart(10)}  ${x.overlap.lexical_recall_at_5.gold.toFixed(2)}/${x.overlap.lexical_recall_at_5.answer.toFixed(2)}/${x.overlap.lexical_recall_at_5.indirect.toFixed(2)}`,
    );
  }
  const tr = st.splits.train;
  lines.push(`candidates per question: ${st.candidates}; gold per question ${tr.gold_per_question}, indirect ${tr.indirect_per_question} (train)`);
  lines.push(
    `question-word overlap (train): indirect gold ${tr.overlap.indirect_gold}, answer gold ${tr.overlap.answer_gold}, distractors ${tr.overlap.distractor} (top ${tr.overlap.top_distractor}); indirect above all distractors in ${(100 * tr.overlap.indirect_above_all_distractors).toFixed(1)}%`,
  );
  lines.push(
    `vocabulary: ${st.vocabulary.words} words (${st.vocabulary.lowercased} lower-cased); unseen in train: dev ${st.vocabulary.unseen_in_train.dev}, test ${st.vocabulary.unseen_in_train.test}; words per question ${st.lengths.question_words.min}-${st.lengths.question_words.max} (mean ${st.lengths.question_words.mean}), per passage ${st.lengths.passage_words.min}-${st.lengths.passage_words.max} (mean ${st.lengths.passage_words.mean})`,
  );
  return lines.join('\n') + '\n';
}
