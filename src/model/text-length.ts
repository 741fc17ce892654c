/**
 * Cutting a batch of token ids after its last end-of-text token. CLIP's text tower is causal and pooled at the
 * end token (the argmax of the ids: the end token has the largest id in CLIP's vocabulary), so the features of a
 * caption do not depend on the padding after it: a text encoder whose sequence axis is symbolic gives the same
 * features, up to float rounding of the smaller matrix products, on ids cut to max(argmax) + 1 over the batch's
 * rows. Typical captions are 10–25 tokens of 77, so the text encoder does a fraction of the work.
 *
 * The length depends only on the batch's ids, so the same batch is always cut the same way: runs stay
 * deterministic.
 */

/**
 * One past the last row's pooled position: max over rows of (first index of the row's largest id) + 1. That is
 * never less than 1 and never cuts a row's end token (nor any id at or before it); `L` when a row fills the
 * context.
 */
export function pooledLength(ids: BigInt64Array, batch: number, L: number): number {
  let keep = 1;
  for (let b = 0; b < batch; b++) {
    const row = b * L;
    let best = ids[row]!;
    let at = 0;
    // Strictly larger: ties keep the first index, as torch.argmax and ONNX ArgMax (select_last_index 0) do.
    for (let j = 1; j < L; j++) {
      const v = ids[row + j]!;
      if (v > best) {
        best = v;
        at = j;
      }
    }
    if (at + 1 > keep) {
      keep = at + 1;
      if (keep === L) break;
    }
  }
  return keep;
}

/** The first `n` ids of each of the batch's rows, as a new [batch, n] array (the input itself when n = L). */
export function cutIds(ids: BigInt64Array, batch: number, L: number, n: number): BigInt64Array {
  if (n === L) return ids;
  const out = new BigInt64Array(batch * n);
  for (let b = 0; b < batch; b++) out.set(ids.subarray(b * L, b * L + n), b * n);
  return out;
}
