import { GrerankError } from '../errors.js';
import type { GumbelOptions } from '../gumbel/mask.js';
import type { Rng } from '../util/rng.js';
import { ADistObjective } from './adist.js';
import { EmdrObjective } from './emdr.js';
import { GumbelObjective } from './gumbel.js';
import { LoopObjective } from './loop.js';
import type { Objective } from './objective.js';
import { PDistObjective } from './pdist.js';

export { ADistObjective } from './adist.js';
export { EmdrObjective, EMDR_DEFAULTS, type EmdrOptions } from './emdr.js';
export { GumbelObjective } from './gumbel.js';
export { LoopObjective } from './loop.js';
export { PDistObjective } from './pdist.js';
export { DistillationObjective, DISTILL_DEFAULTS, type DistillOptions } from './teacher.js';

/**
 * Training objectives by name. 'weights' is Algorithm 2: the scorer is a WeightTable and the
 * objective is G-Rerank's. The baselines (SPEC.md section 4) train the same scorers from teacher
 * signals of the frozen reader.
 */
export const OBJECTIVES = ['gumbel', 'weights', 'emdr', 'pdist', 'loop', 'adist'] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];

export interface ObjectiveOptions {
  /** Algorithm 1's knobs (gumbel, weights). */
  gumbel?: GumbelOptions;
  /** T_s of the student p_R = softmax(w / T_s) (emdr, pdist, loop, adist). Default 0.01. */
  temperatureScore?: number;
  /** T_g of the target softmax(s / T_g) (pdist, loop, adist). Default 0.01. */
  temperatureGold?: number;
  /** Temperature of the reader's token distribution in EMDR (default 1; Atlas' code uses T_g). */
  temperatureLm?: number;
}

/** The objective `name` with `opts`; `rng` draws G-Rerank's Gumbel noise (the baselines draw none). */
export function makeObjective(name: ObjectiveName, opts: ObjectiveOptions, rng: Rng): Objective {
  const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  const distill = defined({ temperatureScore: opts.temperatureScore, temperatureGold: opts.temperatureGold });
  switch (name) {
    case 'gumbel':
    case 'weights':
      if (!opts.gumbel) throw new GrerankError(`method ${name} needs the Gumbel options (k, tau, kappa)`);
      return new GumbelObjective(opts.gumbel, rng);
    case 'emdr':
      return new EmdrObjective(defined({ temperatureScore: opts.temperatureScore, temperatureLm: opts.temperatureLm }));
    case 'pdist':
      return new PDistObjective(distill);
    case 'loop':
      return new LoopObjective(distill);
    case 'adist':
      return new ADistObjective(distill);
    default:
      throw new GrerankError(`unknown method "${String(name)}"; expected one of ${OBJECTIVES.join(', ')}`);
  }
}
