#!/usr/bin/env node
// Entry point for `srun node launcher/start.js ...` and local runs.
//
//   node launcher/start.js --demo [--quick]      the embedded default (npm start)
//   node launcher/start.js --config FILE         one training process (grerank train --config)
//
// Multi-worker launching (--gpus N, --cpu-workers N, SLURM) is not implemented yet: the
// coordinator, per-device workers and the all-reduce hook are the next piece of work. Until then
// asking for more than one worker fails with a message rather than silently running one.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const args = process.argv.slice(2);

function usage() {
  process.stdout.write(`usage: node launcher/start.js --demo [--quick] [demo options]
       node launcher/start.js --config FILE [grerank train options]
       node launcher/start.js --help

--demo     runs the embedded default end to end (see 'grerank demo --help')
--config   trains in this process with the settings of FILE (see 'grerank train --help')
--gpus N, --cpu-workers N
           data-parallel launching across devices is not implemented yet; N must be 1
`);
}

if (args.includes('--help') || args.includes('-h') || args.length === 0) {
  usage();
  process.exit(args.length === 0 ? 2 : 0);
}
for (const flag of ['--gpus', '--cpu-workers']) {
  const i = args.indexOf(flag);
  if (i >= 0) {
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1) {
      process.stderr.write(`error: ${flag} needs a positive integer\n`);
      process.exit(2);
    }
    if (n > 1) {
      process.stderr.write(`error: ${flag} ${n}: multi-worker training is not implemented yet; run with ${flag} 1\n`);
      process.exit(2);
    }
    args.splice(i, 2);
  }
}
const rest = args.filter((a) => a !== '--demo');
const command = args.includes('--demo') ? ['demo', ...rest] : ['train', ...rest];
const r = spawnSync(process.execPath, [cli, ...command], { stdio: 'inherit' });
process.exit(r.status ?? 1);
