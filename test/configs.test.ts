import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS, METHODS } from '../src/train/run.js';
import { REPO } from './helpers/shared.js';

const dir = join(REPO, 'configs');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('configs/', () => {
  it('holds one file per paper experiment', () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
  });

  it.each(files)('%s uses only known keys, the paper\'s Gumbel settings and sane sizes', (f) => {
    const cfg = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    const known = new Set([...Object.keys(TRAIN_DEFAULTS), 'reader', 'reranker', 'data', 'out']);
    for (const k of Object.keys(cfg)) expect(known.has(k), `${f}: unknown key ${k}`).toBe(true);
    for (const k of Object.keys(cfg.encode)) expect(Object.keys(TRAIN_DEFAULTS.encode)).toContain(k);
    expect(METHODS).toContain(cfg.method);
    expect(cfg.gumbel).toEqual({ k: 5, tau: 0.5, kappa: 1.0 });
    expect(cfg.encode.passageMaxLength).toBe(250);
    expect(cfg.gumbel.k).toBeLessThanOrEqual(cfg.encode.nPassages);
  });
});
