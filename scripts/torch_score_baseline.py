#!/usr/bin/env python3
"""A straightforward PyTorch implementation of `mimic score`, as a timing baseline for scripts/bench-score.mjs.

What one would write without this project: eager PyTorch, Python's tarfile, PIL decode and resize, the encoders
run once per batch under no_grad, then one autograd backward pass per sample through the projection heads only
(G_i = dL_i/dW, the exact per-sample gradient with the whole batch's coupling), and the scores of DESIGN §5 from
those gradients. Batches never cross shards; a shard's last, partial batch borrows its missing negatives from the
previous batch's tail (the pipeline's fill policy), so the work matches the pipeline's.

Usage:
  torch_score_baseline.py --bundle DIR --proxy-ckpt P.pt --reference-ckpt R.pt [--batch-size 64]
                          [--threads N] [--scores OUT.json] SHARD.tar...
    --bundle          a bundle of the same architecture: its model.json gives the architecture, the image
                      preprocessing and the context length, its vocabulary the tokenizer
    --proxy-ckpt      the proxy's weights (export_bundle.py --save-checkpoint)
    --reference-ckpt  the reference's weights
Prints one line of JSON, {"result": {samples, steadyS, cpuS, ...}}: steadyS runs from the first sample read to
the last score (model loading excluded), cpuS is the process's CPU time (every thread).
"""
import argparse
import io
import json
import os
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_model as cm  # noqa: E402
from clip_tokenizer_ref import Reference  # noqa: E402

IMAGE_KEYS = ('jpg', 'jpeg', 'png', 'webp')


def load_model(cfg: cm.ClipConfig, path: str) -> cm.CLIP:
    model = cm.CLIP(cfg)
    model.load_state_dict(torch.load(path, map_location='cpu'))
    return model.eval()


def samples(path):
    """(key, {ext: bytes}) in tar order, grouped as webdataset does (key = name up to the first dot)."""
    key, files = None, {}
    with tarfile.open(path) as tar:
        for m in tar:
            if not m.isfile():
                continue
            base = os.path.basename(m.name)
            k = os.path.join(os.path.dirname(m.name), base.split('.', 1)[0])
            ext = base.split('.', 1)[1].lower() if '.' in base else ''
            if k != key and key is not None:
                yield key, files
                files = {}
            key = k
            files[ext] = tar.extractfile(m).read()
    if key is not None:
        yield key, files


def preprocess(data: bytes, size: int, mean, std) -> torch.Tensor:
    """CLIP's: shorter side to `size` (bicubic), centre crop, [0,1], normalise."""
    img = Image.open(io.BytesIO(data)).convert('RGB')
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def score_batch(h, t, n, wv0, wt0, scale, dv, dt):
    """Per-sample gradients by autograd, one backward pass per real row (the first n of the batch)."""
    wv = wv0.clone().requires_grad_(True)
    wt = wt0.clone().requires_grad_(True)
    x = F.normalize(h @ wv, dim=-1)
    y = F.normalize(t @ wt, dim=-1)
    logits = scale * x @ y.t()
    target = torch.arange(h.shape[0])
    loss = 0.5 * (F.cross_entropy(logits, target, reduction='none') + F.cross_entropy(logits.t(), target, reduction='none'))
    nv, nt = dv.norm(), dt.norm()
    nb = torch.sqrt(nv * nv + nt * nt)
    out = {k: [] for k in ('loss', 'clip_sim', 'grad_norm_visual', 'mimic_proj_visual', 'mimic_cos_visual',
                           'grad_norm_text', 'mimic_proj_text', 'mimic_cos_text', 'grad_norm_both', 'mimic_proj_both',
                           'mimic_cos_both')}
    for i in range(n):
        gv, gt = torch.autograd.grad(loss[i], [wv, wt], retain_graph=True)
        dot_v, dot_t = -(gv * dv).sum(), -(gt * dt).sum()
        g_v, g_t = gv.norm(), gt.norm()
        g_b = torch.sqrt(g_v * g_v + g_t * g_t)
        out['loss'].append(loss[i].item())
        out['clip_sim'].append((x[i] * y[i]).sum().item())
        for layer, dot, g, d in (('visual', dot_v, g_v, nv), ('text', dot_t, g_t, nt), ('both', dot_v + dot_t, g_b, nb)):
            out[f'grad_norm_{layer}'].append(g.item())
            out[f'mimic_proj_{layer}'].append((dot / d).item())
            out[f'mimic_cos_{layer}'].append((dot / (g * d)).item() if g > 0 else 0.0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--bundle', required=True)
    ap.add_argument('--proxy-ckpt', required=True)
    ap.add_argument('--reference-ckpt', required=True)
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: its default, the cores)')
    ap.add_argument('--scores', help='write the per-row scores as JSON here')
    ap.add_argument('shards', nargs='+')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with open(os.path.join(args.bundle, 'model.json')) as f:
        manifest = json.load(f)
    cfg = cm.ClipConfig.from_dict(manifest['source']['architecture'])
    image = manifest['image']
    context = manifest['text']['context_length']
    tok = Reference(os.path.join(args.bundle, manifest['text']['vocab']))
    proxy = load_model(cfg, args.proxy_ckpt)
    ref = load_model(cfg, args.reference_ckpt)
    wv0, wt0 = proxy.visual.proj.detach(), proxy.text_projection.detach()
    dv, dt = ref.visual.proj.detach() - wv0, ref.text_projection.detach() - wt0
    scale = proxy.logit_scale.detach().exp()
    B = args.batch_size

    t0 = time.perf_counter()
    spent = {'encodeS': 0.0, 'gradS': 0.0}
    rows = []
    n_samples = 0
    for shard in args.shards:
        prev = None
        pending = []

        def flush(prev):
            n = len(pending)
            pixels = torch.stack([p for _, p, _ in pending])
            ids = torch.tensor([i for _, _, i in pending], dtype=torch.long)
            a = time.perf_counter()
            with torch.no_grad():
                h = proxy.image_features(pixels)
                t = proxy.text_features(ids)
            b = time.perf_counter()
            hh, tt = h, t
            if n < B and prev is not None:
                hh = torch.cat([h, prev[0][n - B:]])
                tt = torch.cat([t, prev[1][n - B:]])
            s = score_batch(hh, tt, n, wv0, wt0, scale, dv, dt)
            spent['encodeS'] += b - a
            spent['gradS'] += time.perf_counter() - b
            for k, (key, _, _) in enumerate(pending):
                rows.append({'shard': shard, 'key': key, 'status': 'ok', **{c: v[k] for c, v in s.items()}})
            pending.clear()
            return h, t

        for key, files in samples(shard):
            n_samples += 1
            ext = next((e for e in IMAGE_KEYS if e in files), None)
            if ext is None or 'txt' not in files:
                rows.append({'shard': shard, 'key': key, 'status': 'no_image' if ext is None else 'no_caption'})
                continue
            try:
                px = preprocess(files[ext], image['size'], image['mean'], image['std'])
                caption = files['txt'].decode('utf-8')
            except Exception as e:  # noqa: a bad sample is recorded, never fatal
                rows.append({'shard': shard, 'key': key, 'status': 'decode_error', 'error': str(e)})
                continue
            pending.append((key, px, tok.tokenize(caption, context)))
            if len(pending) == B:
                prev = flush(prev)
        if pending:
            flush(prev)
    steady = time.perf_counter() - t0
    cpu = time.process_time()
    if args.scores:
        with open(args.scores, 'w') as f:
            json.dump(rows, f)
    print(json.dumps({'result': {'samples': n_samples, 'steadyS': steady, 'cpuS': cpu, 'threads': torch.get_num_threads(), **spent}}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
