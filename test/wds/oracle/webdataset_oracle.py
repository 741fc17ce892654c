"""What Python's webdataset yields for some shards: the oracle for test/wds (not run in CI, which has no webdataset).

Usage (webdataset's source from github.com/webdataset/webdataset, e.g. fetched to /tmp/webdataset):
    WEBDATASET_SRC=/tmp/webdataset/src /usr/bin/python3 test/wds/oracle/webdataset_oracle.py [--continue] SHARD...

Prints JSON: per shard the samples (key, sorted extensions, byte sizes), a digest of all
keys and bytes, that `tarfile_samples` yields, and the
error it raised, if any. With --continue the pipeline uses webdataset's `warn_and_continue` handler (what a
training job that tolerates bad samples sees); otherwise the default `reraise_exception`.
`braceexpand` (only imported, never used here) is replaced by an empty module when it is not installed.
"""
import hashlib
import json
import os
import sys
import types

sys.path.insert(0, os.environ.get("WEBDATASET_SRC", "/tmp/webdataset/src"))
try:
    import braceexpand  # noqa: F401
except ImportError:
    sys.modules["braceexpand"] = types.ModuleType("braceexpand")

import warnings  # noqa: E402

from webdataset import tariterators  # noqa: E402
from webdataset.handlers import reraise_exception, warn_and_continue  # noqa: E402

warnings.simplefilter("ignore")
args = sys.argv[1:]
handler = reraise_exception
if args and args[0] == "--continue":
    handler = warn_and_continue
    args = args[1:]

out = []
for url in args:
    samples = []
    error = None
    digest = hashlib.sha256()
    try:
        for s in tariterators.tarfile_samples([dict(url=url)], handler=handler):
            exts = sorted(k for k in s if not k.startswith("__"))
            samples.append({"key": s["__key__"], "exts": exts, "sizes": {k: len(s[k]) for k in exts}})
            # The same digest as test/wds's sampleDigest: key, then each extension (sorted) with its bytes.
            digest.update(s["__key__"].encode() + b"\n")
            for k in exts:
                digest.update(k.encode() + b"\n" + str(len(s[k])).encode() + b"\n" + s[k])
    except Exception as e:  # the oracle reports what webdataset raised
        error = f"{type(e).__name__}: {e}"[:300]
    out.append({"url": url, "samples": samples, "digest": digest.hexdigest(), "error": error})
print(json.dumps(out))
