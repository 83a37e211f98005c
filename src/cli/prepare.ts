import { Command, Option } from 'commander';
import { GrerankError } from '../errors.js';
import { formatSummary, NothingWrittenError, prepare } from '../data/prepare/prepare.js';
import { SOURCES, type Source } from '../data/prepare/sources.js';
import { action } from './run.js';
import { intArg } from './options.js';

export function registerPrepare(program: Command): void {
  program
    .command('prepare')
    .description('convert a raw QA dataset file (HotpotQA, 2Wiki, MuSiQue, FiD/DPR NQ and TriviaQA) into training JSON lines with gold / has_answer / indirect labels')
    .addOption(new Option('--from <source>', 'raw format of --in').choices([...SOURCES]).makeOptionMandatory())
    .requiredOption('--in <file>', 'raw file: JSON array or JSON lines (streamed)')
    .requiredOption('--out <file>', 'training file to write (JSON lines); written to a temporary file beside it and renamed at the end')
    .option('--seed <n>', 'seed of candidate shuffling and padding', intArg('--seed', 0, 0xffffffff), 0)
    .option('--n-candidates <n>', 'MuSiQue: pad to n with paragraphs of other questions; FiD/DPR: keep the first n retrieved', intArg('--n-candidates', 1), 20)
    .option('--pad', 'pad every source to --n-candidates, not only MuSiQue')
    .option('--skip-invalid', 'skip and count bad records (reasons in the summary) instead of stopping at the first')
    .option('--limit <n>', 'stop after n examples written (a prefix of the full output)', intArg('--limit', 1))
    .option('--quiet', 'no progress lines and no summary on stderr')
    .addHelpText(
      'after',
      `
Output, one JSON object per line:
  {"id", "question", "target", "answers": [...],
   "ctxs": [{"title", "text", "gold", "has_answer", "indirect", ...source fields}]}
Gold: HotpotQA/2Wiki supporting_facts titles; MuSiQue is_supporting; FiD ctxs isgold, else the
raw has_answer/hasanswer, else DPR's has_answer; DPR training files positive_ctxs.
has_answer: DPR's rule (NFD, uncased, token subsequence) on the passage text; indirect = gold
and not has_answer. Candidates are shuffled (seeded). Rules in docs/data.md.
`,
    )
    .action(
      action(async (o: { from: Source; in: string; out: string; seed: number; nCandidates: number; pad?: boolean; skipInvalid?: boolean; limit?: number; quiet?: boolean }) => {
        let summary;
        try {
          summary = await prepare({
            from: o.from,
            input: o.in,
            output: o.out,
            seed: o.seed,
            nCandidates: o.nCandidates,
            pad: o.pad === true,
            skipInvalid: o.skipInvalid === true,
            limit: o.limit,
            progress: o.quiet ? null : process.stderr,
          });
        } catch (e) {
          if (e instanceof NothingWrittenError && !o.quiet) process.stderr.write(formatSummary(e.summary));
          throw e;
        }
        if (!o.quiet) process.stderr.write(formatSummary(summary));
      }),
    );
}
