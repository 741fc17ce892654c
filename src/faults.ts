/**
 * A test hook, nothing else: lets the kill-and-resume tests SIGKILL the process at an exact point (e.g. between
 * writing a score file and renaming it into place), which a timer cannot hit reliably.
 *
 *   MIMIC_FAULT=<point>:<n>[:<substring>][,…]
 *
 * kills the process with SIGKILL the n-th time (1-based) `maybeCrash(point, detail)` is reached with a detail
 * containing <substring> (any detail when left out). Points: `before-rename` and `after-rename` (AtomicFile.commit,
 * detail = the destination path), `before-manifest` (a worker manifest write). Unset, it costs one lookup.
 */
interface Fault {
  point: string;
  n: number;
  match: string;
  seen: number;
}

let faults: Fault[] | null = null;

function parse(spec: string | undefined): Fault[] {
  if (!spec) return [];
  return spec.split(',').filter(Boolean).map((part) => {
    const [point, n, ...rest] = part.split(':');
    const count = Number(n);
    if (!point || !Number.isInteger(count) || count < 1) throw new Error(`MIMIC_FAULT: cannot parse "${part}" (expected point:n[:substring])`);
    return { point, n: count, match: rest.join(':'), seen: 0 };
  });
}

export function maybeCrash(point: string, detail = ''): void {
  faults ??= parse(process.env.MIMIC_FAULT);
  if (faults.length === 0) return;
  for (const f of faults) {
    if (f.point !== point || !detail.includes(f.match)) continue;
    if (++f.seen === f.n) process.kill(process.pid, 'SIGKILL');
  }
}
