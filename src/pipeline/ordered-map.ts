/**
 * Map an async iterable with up to `concurrency` calls in flight, yielding results in input order.
 * Order matters: a shard's rows must come out in shard order whatever finishes first. Memory stays bounded
 * because at most `concurrency` results wait for their turn. When the source fails (a truncated shard), every
 * item read before the failure is still mapped and yielded, then the source's error is thrown.
 */
export async function* orderedMap<T, R>(
  source: AsyncIterable<T>,
  concurrency: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const limit = Math.max(1, Math.floor(concurrency));
  const pending: Promise<R>[] = [];
  const it = source[Symbol.asyncIterator]();
  let done = false;
  let sourceError: { error: unknown } | null = null;
  try {
    while (true) {
      while (!done && pending.length < limit) {
        let next: IteratorResult<T>;
        try {
          next = await it.next();
        } catch (e) {
          sourceError = { error: e };
          done = true;
          break;
        }
        if (next.done) {
          done = true;
          break;
        }
        const p = fn(next.value);
        // Mark as handled now: a rejection is re-thrown when its turn comes, not reported as unhandled.
        p.catch(() => undefined);
        pending.push(p);
      }
      if (pending.length === 0) break;
      yield await pending.shift()!;
    }
  } finally {
    if (!done) await it.return?.();
  }
  if (sourceError) throw sourceError.error;
}
