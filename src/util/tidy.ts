import * as tf from '@tensorflow/tfjs-core';

/** tf.tidy for functions that return plain host values: every tensor made inside is disposed. */
export function tidyHost<T>(fn: () => T): T {
  let result!: T;
  tf.tidy(() => {
    result = fn();
  });
  return result;
}
