import { describe, expect, it } from 'vitest';
import { grerank } from './helpers/cli.js';

/** Bad numbers are parsed before any command runs: each must be one line and exit 1, never a stack trace. */
describe('numeric options of every command', () => {
  it.each([
    [['train', '--steps', '-1'], "option '--steps <n>' argument '-1' is invalid. --steps must be an integer >= 0"],
    [['train', '--tau', 'abc'], '--tau must be a number >= 0.000001, got "abc"'],
    [['train-reader', '--batch-size', '0'], '--batch-size must be an integer >= 1'],
    [['eval', '--k', '2.5'], '--k must be an integer'],
    [['prepare', '--n-candidates', 'many'], '--n-candidates must be an integer >= 1'],
    [['prepare', '--seed', '4294967296'], '--seed must be an integer >= 0 and <= 4294967295'],
    [['synth', '--train', '1e3'], '--train must be an integer >= 0, got "1e3"'],
    [['demo', '--reader-renamed-steps', '-3'], '--reader-renamed-steps must be an integer >= 0'],
    [['demo', '--reranker-steps', '0'], '--reranker-steps must be an integer >= 1'],
  ])('grerank %j', (args, message) => {
    const r = grerank(args);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('(run with --help'));
    expect(lines.filter((l) => l.startsWith('error: '))).toHaveLength(1);
    expect(lines.find((l) => l.startsWith('error: '))).toContain(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
