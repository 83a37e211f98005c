// Checkpoint, tensor-file and tokenizer I/O.
export type { RawTensor, StateDict } from './types.js';
export { expectTensor, loadStateDict, readConfig, readJsonFile } from './checkpoint.js';
export { readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';
export type { HeaderEntry as SafetensorsHeaderEntry } from './safetensors.js';
export { readPytorchBin, unpickle } from './pytorch.js';
export { ZipReader } from './zip.js';
export {
  loadTokenizer,
  padAndTruncate,
  tokenizerFromJson,
  xlmrTestTokenizerJson,
} from './tokenizer.js';
export type { DetailedEncoding, EncodeOptions, PaddedBatch, TextTokenizer } from './tokenizer.js';
