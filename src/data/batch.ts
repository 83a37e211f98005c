/**
 * One training batch, tokenised: what a worker turns into tensors. Plain typed arrays, so a
 * batch can cross thread and process boundaries without copies.
 */
export interface RerankBatch {
  /** Queries in the batch. */
  b: number;
  /** Candidate passages per query. */
  n: number;
  /** Reranker inputs: one (query, passage) pair per row, [b*n, pairLen]. */
  pairIds: Int32Array;
  pairMask: Int32Array;
  pairLen: number;
  /** Reader inputs: "question: q title: t context: c" per passage, [b, n, passageLen]. */
  passageIds: Int32Array;
  passageMask: Int32Array;
  passageLen: number;
  /** Target tokens followed by </s>, -100 on padding, [b, targetLen]. */
  labels: Int32Array;
  targetLen: number;
  /** Dataset indices of the queries (Algorithm 2 keys its weights by them). */
  index: Int32Array;
}

/** The FiD reader's text for one passage (FiD's format). */
export function readerText(question: string, title: string, text: string): string {
  return `question: ${question} title: ${title} context: ${text}`;
}

/** RankT5's text for one pair. */
export function rankT5Text(question: string, title: string, text: string): string {
  return `Query: ${question} Document: ${title ? `${title} ${text}` : text}`;
}

/**
 * Pads or truncates token rows to `len` (T5 convention: a truncated row keeps its final `eos`).
 * Returns row-major ids and 0/1 mask [rows, len].
 */
export function padRows(rows: readonly (readonly number[])[], len: number, padId: number, eosId?: number): { ids: Int32Array; mask: Int32Array } {
  const ids = new Int32Array(rows.length * len).fill(padId);
  const mask = new Int32Array(rows.length * len);
  rows.forEach((row, r) => {
    let take = row.length;
    if (take > len) take = len;
    for (let j = 0; j < take; j++) {
      ids[r * len + j] = row[j]!;
      mask[r * len + j] = 1;
    }
    if (row.length > len && eosId !== undefined && row[row.length - 1] === eosId) ids[r * len + len - 1] = eosId;
  });
  return { ids, mask };
}

/** Target rows -> labels [rows, len] with -100 on padding (truncated rows keep `eos` last). */
export function labelRows(rows: readonly (readonly number[])[], len: number, eosId: number): Int32Array {
  const { ids, mask } = padRows(rows, len, 0, eosId);
  for (let i = 0; i < ids.length; i++) if (!mask[i]) ids[i] = -100;
  return ids;
}
