#!/usr/bin/python3
"""Oracle for src/demo/metrics.ts, computed the slow, obvious way (stdin: JSON cases, stdout: JSON results).

AUROC: count every (bad, good) pair, a tie counting one half. Precision at k: the average over EVERY order of the
rows that sorts them by suspicion (ties in all their orders), enumerated with itertools for small cases.
Percentiles: numpy.percentile(method='linear'). Kept-set noise: the mask computed with numpy.
"""
import itertools
import json
import sys

import numpy as np


def auroc(s, bad):
    pos = [v for v, b in zip(s, bad) if b]
    neg = [v for v, b in zip(s, bad) if not b]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def precision_at_k(s, bad, k):
    # Every permutation that is sorted by descending suspicion, each counted once.
    idx = list(range(len(s)))
    total, count = 0.0, 0
    for perm in itertools.permutations(idx):
        if all(s[perm[i]] >= s[perm[i + 1]] for i in range(len(perm) - 1)):
            total += sum(bad[j] for j in perm[:k]) / k
            count += 1
    return total / count


def main():
    cases = json.load(sys.stdin)
    out = []
    for c in cases:
        s, bad = c['suspicion'], c['bad']
        r = {'auroc': auroc(s, bad)}
        if c.get('k') is not None:
            r['precision'] = precision_at_k(s, bad, c['k'])
        a = np.array(c['values'], dtype=np.float64)
        r['percentiles'] = [float(np.percentile(a, q, method='linear')) for q in c['qs']]
        top = a >= np.percentile(a, 100 * (1 - c['fraction']), method='linear')
        low = a <= np.percentile(a, 100 * c['fraction'], method='linear')
        r['keepTop'] = top.astype(int).tolist()
        r['bottom'] = low.astype(int).tolist()
        badv = np.array(c['valuesBad'], dtype=bool)
        r['keptNoise'] = float(badv[top].mean()) if top.any() else None
        out.append(r)
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
