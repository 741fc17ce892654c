#!/usr/bin/env python3
"""Helpers of scripts/bench-gpu that need PyTorch (the GPU machine's own: /opt/torch/.venv/bin/python).

  reference SRC OUT [--eps 0.05] [--seed 1]
      A second bundle for `mimic score` sharing SRC's encoder files (hard links: a ViT-B/32 bundle is ~600 MB) with
      projection heads perturbed by relative noise EPS, so the direction W_ref - W is not zero. Enough for a
      throughput benchmark (the encoders' work is the same); not a model anyone should score with.
  rate [--config vit-b-32] [--batch 256] [--seconds 4] [--device cuda]
      PyTorch eager images/s (or captions/s) of the towers, random weights, inputs already on the device (as
      DESIGN §8 measured), fp32 and fp16, plus fp16 with uint8 pixels copied from host memory each batch and
      normalised on the device (what onnxruntime-node has to do). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_model as cm  # noqa: E402
import safetensors_io as st  # noqa: E402


def make_reference(src: str, out: str, eps: float, seed: int) -> None:
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for name in os.listdir(src):
        if name in ('heads.safetensors', 'model.json'):
            continue
        try:
            os.link(os.path.join(src, name), os.path.join(out, name))
        except OSError:
            shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
    heads, meta = st.load(os.path.join(src, 'heads.safetensors'))
    gen = torch.Generator().manual_seed(seed)
    for k in ('visual_projection', 'text_projection'):
        w = heads[k]
        heads[k] = (w + torch.randn(w.shape, generator=gen) * eps * w.pow(2).mean().sqrt()).float().contiguous()
    st.save(os.path.join(out, 'heads.safetensors'), heads, meta or {})
    with open(os.path.join(src, 'model.json')) as f:
        manifest = json.load(f)
    manifest['name'] = manifest['name'] + f'-heads-perturbed{eps:g}'
    # Its recipe no longer describes these heads: drop it rather than let a tool rebuild the wrong weights.
    (manifest.get('source') or {}).pop('recipe', None)
    with open(os.path.join(out, 'model.json'), 'w') as f:
        json.dump(manifest, f, indent=2)


def timed(fn, seconds: float, device: str) -> tuple:
    for _ in range(3):
        fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
        if device.startswith('cuda') and n % 5 == 0:
            torch.cuda.synchronize()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return n, time.perf_counter() - t0


def rates(config: str, batch: int, seconds: float, device: str) -> dict:
    cfg = cm.CONFIGS[config]
    model = cm.build_random(cfg, 0).to(device).eval()
    s, length = cfg.vision.image_size, cfg.text.context_length
    out = {'torch': torch.__version__, 'device': torch.cuda.get_device_name(0) if device.startswith('cuda') else 'cpu',
           'config': config, 'batch': batch}
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn((batch, 3, s, s), generator=gen).to(device)
    ids = torch.zeros((batch, length), dtype=torch.int64)
    ids[:, 0] = cm.CLIP_SOT
    ids[:, 1:12] = torch.randint(0, cm.CLIP_SOT, (batch, 11), generator=gen)
    ids[:, 12] = cm.CLIP_EOT
    ids = ids.to(device)
    host_u8 = torch.randint(0, 256, (batch, s, s, 3), dtype=torch.uint8, generator=gen)  # pageable, as node's buffers
    mean = torch.tensor(cm.CLIP_MEAN, device=device).reshape(1, 3, 1, 1)
    std = torch.tensor(cm.CLIP_STD, device=device).reshape(1, 3, 1, 1)
    with torch.no_grad():
        for dtype, name in ((torch.float32, 'fp32'), (torch.float16, 'fp16')):
            if dtype == torch.float16 and not device.startswith('cuda'):
                continue
            m = model.to(dtype)
            x = pixels.to(dtype)
            n, dt = timed(lambda: m.image_features(x), seconds, device)
            out[f'image_{name}'] = n * batch / dt
            n, dt = timed(lambda: m.text_features(ids), seconds, device)
            out[f'text_{name}'] = n * batch / dt
            if dtype == torch.float16:
                def from_host():
                    u = host_u8.to(device, non_blocking=False)
                    xx = ((u.permute(0, 3, 1, 2).float() / 255 - mean) / std).to(dtype)
                    return m.image_features(xx)
                n, dt = timed(from_host, seconds, device)
                out['image_fp16_uint8_from_host'] = n * batch / dt
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('reference')
    r.add_argument('src')
    r.add_argument('out')
    r.add_argument('--eps', type=float, default=0.05)
    r.add_argument('--seed', type=int, default=1)
    q = sub.add_parser('rate')
    q.add_argument('--config', default='vit-b-32', choices=sorted(cm.CONFIGS))
    q.add_argument('--batch', type=int, default=256)
    q.add_argument('--seconds', type=float, default=4.0)
    q.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    a = p.parse_args()
    if a.cmd == 'reference':
        make_reference(a.src, a.out, a.eps, a.seed)
        print(json.dumps({'reference': a.out}))
    else:
        print(json.dumps(rates(a.config, a.batch, a.seconds, a.device)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
