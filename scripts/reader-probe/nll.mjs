// The same with/without-bridge NLL through the project's FidReader (wasm), to check fid.py against it.
// Usage: node scripts/reader-probe/nll.mjs [READER_DIR] [DIR]
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../dist/backend/index.js';
import { FidReader, disposeEncoding } from '../../dist/models/fid.js';
import { shiftRight } from '../../dist/models/t5.js';

const [readerDir = 'assets/demo-reader', dir = '/tmp/reader-probe'] = process.argv.slice(2);
await initBackend('wasm', { quiet: true });
const meta = JSON.parse(readFileSync(`${dir}/meta.json`, 'utf8'));
const reader = await FidReader.load(readerDir);
for (const name of ['withB', 'noB']) {
  const { q, n } = meta[name];
  const ids = new Int32Array(readFileSync(`${dir}/${name}.ids`).buffer.slice(0));
  const labels = new Int32Array(readFileSync(`${dir}/${name}.lab`).buffer.slice(0));
  const enc = reader.encodePassages(tf.tensor3d(ids, [q, n, meta.L], 'int32'), tf.tensor3d(ids.map((x) => (x !== 0 ? 1 : 0)), [q, n, meta.L], 'int32'));
  const out = reader.forward(enc, tf.tensor2d(shiftRight(labels, q, meta.A, 0, 0), [q, meta.A], 'int32'), tf.tensor2d(labels, [q, meta.A], 'int32'));
  console.log(`${name}: ${(tf.sum(out.perToken).dataSync()[0] / q).toFixed(6)} nats per question`);
  disposeEncoding(enc);
}
