import { createReadStream } from 'node:fs';
import { GrerankError } from '../errors.js';

/**
 * Streams a text file line by line (never the whole file in one string), decoding each line as
 * strict UTF-8: a bad byte is an error naming the file and line, not silently replaced text.
 * Yields [1-based line number, text without the newline].
 */
export async function* readLines(file: string): AsyncGenerator<[number, string]> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let carry: Buffer | null = null;
  let lineNo = 0;
  const decode = (buf: Buffer): string => {
    lineNo++;
    const end = buf.length > 0 && buf[buf.length - 1] === 0x0d ? buf.length - 1 : buf.length;
    try {
      return decoder.decode(buf.subarray(0, end));
    } catch {
      throw new GrerankError(`${file}:${lineNo}: not valid UTF-8`);
    }
  };
  let stream;
  try {
    stream = createReadStream(file);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let data: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
      let start = 0;
      let nl: number;
      while ((nl = data.indexOf(0x0a, start)) !== -1) {
        yield [lineNo + 1, decode(data.subarray(start, nl))];
        start = nl + 1;
      }
      carry = start < data.length ? Buffer.from(data.subarray(start)) : null;
      data = Buffer.alloc(0);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new GrerankError(`${file}: no such file`);
    if (err.code === 'EISDIR') throw new GrerankError(`${file}: is a directory`);
    throw e;
  }
  if (carry && carry.length) yield [lineNo + 1, decode(carry)];
}
