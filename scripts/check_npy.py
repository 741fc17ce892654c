#!/usr/bin/python3
"""Check a DataComp subset file the way DataComp's resharder reads it.

Usage: check_npy.py SUBSET.npy UIDS.txt

UIDS.txt holds the uids that should be in the subset, one per line, in any order. The script loads the .npy
with numpy, checks the dtype is the resharder's np.dtype("u8,u8"), that the array equals Python's own
computation (divmod(int(uid, 16), 2**64) for every uid, sorted), that it is sorted, and that the resharder's
membership test (np.searchsorted left/right) finds every uid. Prints a JSON line; exits 1 on any mismatch.
"""
import json
import sys

import numpy as np


def main() -> int:
    npy_path, uids_path = sys.argv[1], sys.argv[2]
    subset = np.load(npy_path, mmap_mode="r")
    u16 = np.dtype("u8,u8")  # resharder.py's dtype
    problems = []
    if subset.dtype != u16:
        problems.append(f"dtype {subset.dtype} is not {u16}")
    if subset.ndim != 1:
        problems.append(f"shape {subset.shape} is not one-dimensional")
    with open(uids_path, encoding="utf-8") as f:
        uids = [line.strip() for line in f if line.strip()]
    expected = np.array(sorted(divmod(int(u, 16), 2**64) for u in uids), dtype=u16)
    if subset.shape != expected.shape or not np.array_equal(np.asarray(subset), expected):
        problems.append(f"content differs from Python's divmod(int(uid, 16), 2**64), sorted ({subset.shape} vs {expected.shape})")
    flat = [(int(a), int(b)) for a, b in np.asarray(subset).tolist()]
    if flat != sorted(flat):
        problems.append("not sorted")
    missing = 0
    for u in uids:
        key = np.array([divmod(int(u, 16), 2**64)], u16)[0]
        a = np.searchsorted(subset, key, "left")
        b = np.searchsorted(subset, key, "right")
        if b <= a:
            missing += 1
    if missing:
        problems.append(f"{missing} uids not found by np.searchsorted")
    print(json.dumps({"ok": not problems, "count": int(subset.shape[0]) if subset.ndim == 1 else None,
                      "dtype": str(subset.dtype), "problems": problems}))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
