#!/usr/bin/python3
"""Train the demo's tiny CLIPs on the emoji data and export them as `mimic-clip/1` bundles.

What it makes (DESIGN §4: proxy and reference share a lineage):
  <out>/demo-reference/     a tiny CLIP trained contrastively, from a seeded random initialisation, on the clean
                            reference set (reference/ shards: emoji in the reference styles, plus every style for
                            the emoji kept out of the pool)
  <out>/demo-proxy-<step>/  checkpoints of a CLIP trained on the noisy pool (pool/ shards, a known fraction of the
                            captions swapped or corrupted), at the steps of --proxy-steps

Proxies (--proxy-mode):
  heads (default)  the reference's encoders, frozen, with projection heads (and temperature) trained on the pool
                   from the SAME initial heads the reference started from: the paper's linear-probe setting, where
                   W_ref − W is measured in the features both models read. The proxy bundles' visual.onnx and
                   textual.onnx are the reference's, byte for byte (git stores them once).
  full             a whole CLIP trained on the pool from the reference's initialisation. Measured on the demo
                   (scripts/bench-quality.mjs --full-proxies): the two towers drift into unrelated feature bases
                   within a few hundred steps and the mimic score falls to near chance, as DESIGN §4 warns.

Rebuild the committed bundles in models/ (about 6 minutes on a busy 2-core machine, one thread):
  npm ci && npm run build
  node scripts/build_demo_shards.mjs --out /tmp/mimic-demo
  /usr/bin/python3 scripts/train_tiny_clip.py --data /tmp/mimic-demo --out models
The result is the same for the same data, options and --threads (PyTorch's CPU kernels reduce in a thread-count
dependent order); each bundle's check file proves that its ONNX files reproduce the PyTorch model either way, and
the export runs `mimic check` on it when the project is built.

The model is scripts/clip_model.py's CLIP with a tiny config (32-px images in 8-px patches, two layers per tower,
GELU) and one change that keeps the bundles small: CLIP's 49,408-token embedding table (25 MB at width 128)
becomes an int16 lookup table from CLIP BPE ids to the rows of a compact table that holds only the tokens of the
demo's caption corpus (corpus.txt, written by the data builder: every name, keyword, caption word and boilerplate
text) plus one shared row for every other token. The tokenizer is unchanged (CLIP BPE; the full vocabulary file
travels with each bundle) and textual.onnx does the remap (Gather on the int16 table, Cast, Gather on the rows),
so the bundle contract (input_ids int64 [B, L] -> text_features) is the usual one. The end-of-text token is
still found as the argmax of the raw ids.

Preprocessing is the bundle's: shorter side to 32 px (bicubic), centre crop, CLIP's mean and std. Tokenization is
scripts/clip_tokenizer_ref.py (OpenAI's CLIP BPE). Training: AdamW, linear warm-up then cosine decay (full
training), CLIP's symmetric InfoNCE loss with a learned temperature (clamped at 100), batches drawn by a seeded
generator.

The quality benchmark (scripts/bench-quality.mjs) runs `--stage reference --reference-checkpoint PT` once and
`--stage proxies --reference-checkpoint PT` for pools at other noise rates and seeds.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_model as cm  # noqa: E402
import export_bundle as eb  # noqa: E402
from clip_tokenizer_ref import Reference as ClipTokenizer  # noqa: E402

# The npm packages of the styles (src/demo/catalog.ts), as the samples' urls name them.
STYLE_PACKAGES = {'google': 'emoji-datasource-google', 'twitter': 'emoji-datasource-twitter',
                  'apple': 'emoji-datasource-apple', 'facebook': 'emoji-datasource-facebook', 'openmoji': 'openmoji'}

DEMO_CONFIG = cm.ClipConfig(
    embed_dim=32,
    vision=cm.VisionConfig(image_size=32, patch_size=8, width=64, layers=2, heads=4),
    text=cm.TextConfig(context_length=24, vocab_size=cm.CLIP_VOCAB_SIZE, width=48, layers=2, heads=4),
    act='gelu',
)


class CompactCLIP(cm.CLIP):
    """CLIP whose token embedding holds rows for a subset of the BPE vocabulary (row 0: every other token)."""

    def __init__(self, cfg: cm.ClipConfig, kept_ids: Sequence[int]):
        super().__init__(replace(cfg, text=replace(cfg.text, vocab_size=1)))
        # cfg.text.vocab_size stays CLIP's: it is the id space the bundle's tokenizer and input_ids live in.
        self.cfg = cfg
        kept = sorted(set(int(i) for i in kept_ids))
        if len(kept) + 1 > 32767:
            raise ValueError(f'{len(kept)} kept tokens do not fit an int16 row table')
        self.token_embedding = nn.Embedding(len(kept) + 1, cfg.text.width)
        rows = torch.zeros(cfg.text.vocab_size, dtype=torch.int16)
        rows[torch.tensor(kept, dtype=torch.int64)] = torch.arange(1, len(kept) + 1, dtype=torch.int16)
        self.register_buffer('token_rows', rows)

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(self.token_rows[input_ids].long()) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.attn_mask))
        eot = input_ids.argmax(dim=-1)
        index = eot.reshape(-1, 1, 1).expand(-1, 1, x.shape[2])
        return torch.gather(x, 1, index).squeeze(1)


def build_init(cfg: cm.ClipConfig, kept_ids: Sequence[int], seed: int) -> CompactCLIP:
    """OpenCLIP's initialisation scales, drawn parameter by parameter in name order (as clip_model.build_random)."""
    model = CompactCLIP(cfg, kept_ids)
    cm.init_parameters(model, cfg, seed)
    return model


# ------------------------------------------------------------------------------------------------------ data

def read_shards(paths: Sequence[str]) -> List[Dict[str, bytes]]:
    """Samples of WebDataset shards in order: adjacent members with one key (the basename up to its first dot)."""
    samples: List[Dict[str, bytes]] = []
    for path in paths:
        with tarfile.open(path) as tar:
            key, cur = None, {}
            for m in tar:
                if not m.isfile():
                    continue
                base = m.name.rsplit('/', 1)[-1]
                if '.' not in base:
                    continue
                k = m.name[:len(m.name) - len(base)] + base.split('.', 1)[0]
                ext = base.split('.', 1)[1].lower()
                if k != key and cur:
                    samples.append(cur)
                    cur = {}
                key = k
                cur[ext] = tar.extractfile(m).read()
                cur['__key__'] = k.encode()
            if cur:
                samples.append(cur)
    return samples


def preprocess(image_bytes: bytes, size: int) -> torch.Tensor:
    """uint8 [3, S, S]: shorter side to S (bicubic, torchvision's integer rounding), centre crop."""
    im = Image.open(io.BytesIO(image_bytes)).convert('RGB')
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    im = im.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    return torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(size, size, 3).permute(2, 0, 1).clone()


class PairSet:
    """A shard set in memory: uint8 pixels, token ids, uids and captions."""

    def __init__(self, paths: Sequence[str], tok: ClipTokenizer, cfg: cm.ClipConfig):
        samples = read_shards(paths)
        image_key = lambda s: next(k for k in ('jpg', 'jpeg', 'png', 'webp') if k in s)
        self.pixels = torch.stack([preprocess(s[image_key(s)], cfg.vision.image_size) for s in samples])
        self.captions = [s['txt'].decode('utf-8') for s in samples]
        metas = [json.loads(s['json']) for s in samples]
        self.uids = [m['uid'] for m in metas]
        self.urls = [m.get('url', '') for m in metas]
        self.ids = torch.tensor([tok.tokenize(c, cfg.text.context_length) for c in self.captions], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, keep: Sequence[int]) -> 'PairSet':
        out = PairSet.__new__(PairSet)
        idx = torch.tensor(list(keep), dtype=torch.int64)
        out.pixels, out.ids = self.pixels[idx], self.ids[idx]
        out.captions = [self.captions[i] for i in keep]
        out.uids = [self.uids[i] for i in keep]
        out.urls = [self.urls[i] for i in keep]
        return out


def normalise(pixels_u8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(cm.CLIP_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(cm.CLIP_STD).reshape(1, 3, 1, 1)
    return (pixels_u8.float() / 255.0 - mean) / std


def corpus_token_ids(corpus_file: str, tok: ClipTokenizer) -> List[int]:
    ids = {cm.CLIP_SOT, cm.CLIP_EOT, 0}
    with open(corpus_file, encoding='utf-8') as f:
        for line in f:
            ids.update(tok.encode(line.rstrip('\n')))
    return sorted(ids)


# -------------------------------------------------------------------------------------------------- training

def clip_loss(model: cm.CLIP, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    x, y = model.embed(pixels, ids)
    logits = model.logit_scale.exp() * x @ y.T
    target = torch.arange(len(ids))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def param_groups(model: nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # As OpenCLIP: no decay on gains, biases, embeddings' positions, class token and temperature.
        (no_decay if p.ndim < 2 or 'embedding' in name or name == 'logit_scale' else decay).append(p)
    return [{'params': decay, 'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}]


def train(model: cm.CLIP, data: PairSet, steps: int, batch: int, lr: float, seed: int, label: str,
          checkpoints: Sequence[int] = (), on_checkpoint=None, log_every: int = 100) -> None:
    model.train()
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 10)
    schedule = lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    pos = 0
    t0 = time.time()
    running = 0.0
    for step in range(1, steps + 1):
        if pos + batch > len(data):
            order = torch.randperm(len(data), generator=gen)
            pos = 0
        idx = order[pos:pos + batch]
        pos += batch
        loss = clip_loss(model, normalise(data.pixels[idx]), data.ids[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running += loss.item()
        if step % log_every == 0 or step == steps:
            n = log_every if step % log_every == 0 else step % log_every
            print(f'  {label} step {step}/{steps}: loss {running / n:.3f}, logit scale '
                  f'{model.logit_scale.exp().item():.1f} ({time.time() - t0:.0f} s)', flush=True)
            running = 0.0
        if step in checkpoints and on_checkpoint:
            model.eval()
            on_checkpoint(step, model)
            model.train()
    model.eval()


def per_sample_loss(h: torch.Tensor, t: torch.Tensor, wv: torch.Tensor, wt: torch.Tensor,
                    logit_scale: torch.Tensor) -> torch.Tensor:
    """L_i = ½(CE(S[i,:], i) + CE(S[:,i], i)) for every pair of the batch (DESIGN §5)."""
    x = F.normalize(h @ wv, dim=-1)
    y = F.normalize(t @ wt, dim=-1)
    logits = logit_scale.exp() * x @ y.T
    target = torch.arange(len(h))
    return 0.5 * (F.cross_entropy(logits, target, reduction='none') + F.cross_entropy(logits.T, target, reduction='none'))


def mimic_scores(h, t, wv, wt, logit_scale, ref_v, ref_t) -> torch.Tensor:
    """m_i = ⟨−∂L_i/∂W, D⟩/‖D‖ over both heads, D = W_ref − W: one forward-mode derivative along D gives all i."""
    dv, dt = (ref_v - wv).detach(), (ref_t - wt).detach()
    f = lambda a, b: per_sample_loss(h, t, a, b, logit_scale.detach())
    _, along = torch.autograd.functional.jvp(f, (wv.detach(), wt.detach()), (dv, dt))
    return -along / (dv.pow(2).sum() + dt.pow(2).sum()).sqrt().clamp_min(1e-12)


def train_heads(model: CompactCLIP, init: CompactCLIP, data: PairSet, steps: int, batch: int, lr: float, seed: int,
                checkpoints: Sequence[int], on_checkpoint, log_every: int = 100,
                online_tau: Optional[float] = None, ref_heads: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> None:
    """Train only the projections and the temperature, from `init`'s, on the features of `model`'s frozen encoders.

    The proxy then shares the reference's feature basis exactly, as in the paper's linear-probe experiments, so
    the direction W_ref − W between their heads is expressed in the features both of them read.

    With `online_tau`, the paper's online stage: each batch's per-sample losses are weighted by softmax(m/τ) of
    their mimic scores against `ref_heads` (instead of the plain mean), so that pairs whose gradient points away
    from the reference count less.
    """
    with torch.no_grad():
        model.visual.proj.copy_(init.visual.proj)
        model.text_projection.copy_(init.text_projection)
        model.logit_scale.copy_(init.logit_scale)
        feats_i = torch.cat([model.image_features(normalise(data.pixels[i:i + 512])) for i in range(0, len(data), 512)])
        feats_t = torch.cat([model.text_features(data.ids[i:i + 512]) for i in range(0, len(data), 512)])
    heads = [model.visual.proj, model.text_projection, model.logit_scale]
    opt = torch.optim.AdamW(heads, lr=lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    pos = 0
    running = 0.0
    for step in range(1, steps + 1):
        if pos + batch > len(data):
            order = torch.randperm(len(data), generator=gen)
            pos = 0
        idx = order[pos:pos + batch]
        pos += batch
        h, t = feats_i[idx], feats_t[idx]
        losses = per_sample_loss(h, t, model.visual.proj, model.text_projection, model.logit_scale)
        if online_tau is None:
            loss = losses.mean()
        else:
            m = mimic_scores(h, t, model.visual.proj, model.text_projection, model.logit_scale, *ref_heads)
            loss = (torch.softmax(m / online_tau, dim=0).detach() * losses).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running += loss.item()
        if step % log_every == 0 or step == steps:
            n = log_every if step % log_every == 0 else step % log_every
            print(f'  proxy heads step {step}/{steps}: loss {running / n:.3f}, logit scale '
                  f'{model.logit_scale.exp().item():.1f}', flush=True)
            running = 0.0
        if step in checkpoints:
            on_checkpoint(step, model)


@torch.no_grad()
def retrieval_top1(model: cm.CLIP, data: PairSet) -> Tuple[float, float]:
    """Image→text and text→image top-1 among all the pairs of `data` (a held-out retrieval check)."""
    x = torch.cat([F.normalize(model.image_features(normalise(data.pixels[i:i + 512])) @ model.visual.proj, dim=-1)
                   for i in range(0, len(data), 512)])
    y = torch.cat([F.normalize(model.text_features(data.ids[i:i + 512]) @ model.text_projection, dim=-1)
                   for i in range(0, len(data), 512)])
    sim = x @ y.T
    # Pairs with the same caption (the same emoji and phrasing in two styles) all count as a hit.
    ids = {c: i for i, c in enumerate(sorted(set(data.captions)))}
    cap = torch.tensor([ids[c] for c in data.captions])
    i2t = (cap[sim.argmax(dim=1)] == cap).float().mean().item()
    t2i = (cap[sim.argmax(dim=0)] == cap).float().mean().item()
    return i2t, t2i


@torch.no_grad()
def zero_shot_accuracy(model: cm.CLIP, pixels_u8: torch.Tensor, names: Sequence[str], labels: Sequence[int],
                       tok: ClipTokenizer) -> float:
    """Top-1 of each image among all the names (a retrieval check of what the model learnt)."""
    ids = torch.tensor([tok.tokenize(n, model.cfg.text.context_length) for n in names], dtype=torch.int64)
    y = F.normalize(model.text_features(ids) @ model.text_projection, dim=-1)
    hits = 0
    for i in range(0, len(pixels_u8), 512):
        x = F.normalize(model.image_features(normalise(pixels_u8[i:i + 512])) @ model.visual.proj, dim=-1)
        pred = (x @ y.T).argmax(dim=1)
        hits += (pred == torch.tensor(labels[i:i + 512])).sum().item()
    return hits / len(pixels_u8)


# ---------------------------------------------------------------------------------------------------- export

def export(model: CompactCLIP, out: str, name: str, vocab: str, recipe: dict, verify: str) -> None:
    ns = argparse.Namespace(vocab=vocab, name=name, resize='shortest')
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(out)}.tmp-', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        eb.write_bundle(tmp, model.eval(), ns, recipe, None, list(cm.CLIP_MEAN), list(cm.CLIP_STD))
        eb.place(tmp, os.path.abspath(out), force=True)
    except BaseException:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    note = eb.node_verify(os.path.abspath(out), verify)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f'wrote {out} ({size / 1e6:.2f} MB): {note}', flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', required=True, help='folder written by scripts/build_demo_shards.mjs')
    p.add_argument('--out', required=True, help='folder to write the bundles into (e.g. models)')
    p.add_argument('--stage', choices=['all', 'reference', 'proxies'], default='all')
    p.add_argument('--seed', type=int, default=0, help='initialisation seed (shared by reference and proxies)')
    p.add_argument('--data-seed', type=int, default=1, help='seed of the batch order')
    p.add_argument('--reference-steps', type=int, default=800)
    p.add_argument('--lr', type=float, default=2e-3, help='learning rate of full training (reference, full proxies)')
    p.add_argument('--proxy-mode', choices=['heads', 'full'], default='heads',
                   help="heads: the reference's frozen encoders, heads trained from the initial heads (default); "
                        'full: a whole CLIP trained from the initialisation')
    p.add_argument('--proxy-steps', default='50,400', help='checkpoints of the proxy run (the last one ends it)')
    p.add_argument('--proxy-lr', type=float, default=1e-3, help='learning rate of heads-only proxies')
    p.add_argument('--online-tau', type=float, metavar='TAU',
                   help='heads-only proxies: weight each batch by softmax(mimic score / TAU) (the paper\'s online '
                        'stage) instead of the plain mean')
    p.add_argument('--oracle-clean', action='store_true',
                   help='train the proxies on the pool\'s truly clean pairs only (reads truth.json: an upper bound '
                        'for filtering, for experiments)')
    p.add_argument('--heldout', action='store_true',
                   help='report retrieval top-1 at each proxy checkpoint on a held-out clean set: the reference '
                        'set\'s pool-style drawings of the emoji kept out of the pool')
    p.add_argument('--reference-checkpoint', metavar='PT',
                   help='the reference\'s PyTorch weights: written by --stage reference/all, read by --stage proxies')
    p.add_argument('--batch', type=int, default=256)
    p.add_argument('--threads', type=int, default=1,
                   help='torch.set_num_threads; results depend on it (one thread is also the fastest on a busy 2-core '
                        'machine)')
    p.add_argument('--proxy-prefix', default='demo-proxy', help='proxy bundles are named PREFIX-<step>')
    p.add_argument('--vocab', help='CLIP BPE vocabulary (default: $MIMIC_CLIP_VOCAB or ../shared/data/...)')
    p.add_argument('--verify', choices=['auto', 'required', 'skip'], default='auto',
                   help='run each bundle through onnxruntime with `mimic check` (default: when built)')
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    vocab = args.vocab or eb.default_vocab()
    if not vocab:
        raise eb.ExportError('CLIP vocabulary not found: pass --vocab PATH/bpe_simple_vocab_16e6.txt.gz')
    if args.stage == 'proxies' and args.proxy_mode == 'heads' and not args.reference_checkpoint:
        raise eb.ExportError('--stage proxies with --proxy-mode heads needs --reference-checkpoint (the weights '
                             'written by --stage reference --reference-checkpoint PT)')
    tok = ClipTokenizer(vocab)
    cfg = DEMO_CONFIG
    for f in ('corpus.txt', 'truth.json'):
        if not os.path.isfile(os.path.join(args.data, f)):
            raise eb.ExportError(f'{os.path.join(args.data, f)} is missing: build the data with '
                                 f'scripts/build_demo_shards.mjs')
    kept = corpus_token_ids(os.path.join(args.data, 'corpus.txt'), tok)
    shards = lambda d: sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith('.tar'))
    proxy_steps = sorted(int(s) for s in args.proxy_steps.split(','))
    with open(os.path.join(args.data, 'truth.json')) as f:
        truth = json.load(f)
    data_info = {k: truth.get(k) for k in ('seed', 'noise', 'swapShare', 'referenceStyles', 'poolStyles',
                                          'referenceOnly', 'emoji')}
    common = {
        'script': 'scripts/train_tiny_clip.py', 'config': cfg.to_dict(), 'init_seed': args.seed,
        'data_seed': args.data_seed, 'batch': args.batch, 'threads': args.threads, 'kept_tokens': len(kept),
        'torch': torch.__version__,
    }
    init = build_init(cfg, kept, args.seed)
    n_params = sum(p.numel() for p in init.parameters())
    print(f'tiny CLIP: {n_params / 1e3:.0f}k parameters, {len(kept) + 1} token rows, {args.threads} thread(s)',
          flush=True)

    t0 = time.time()
    pool = PairSet(shards(os.path.join(args.data, 'pool')), tok, cfg)
    # Zero-shot retrieval of the pool's images among the pool emoji's names: a diagnostic of what a model learnt.
    rows = {r['uid']: r for r in truth['rows']}
    names = sorted({r['name'] for r in truth['rows']})
    name_index = {n: i for i, n in enumerate(names)}
    pool_labels = [name_index[rows[u]['name']] for u in pool.uids]
    zero_shot = lambda m: zero_shot_accuracy(m, pool.pixels, names, pool_labels, tok)
    print(f'pool: {len(pool)} pairs ({time.time() - t0:.0f} s to read)', flush=True)

    heldout: Optional[PairSet] = None
    if args.heldout:
        packages = tuple(f'npm:{STYLE_PACKAGES[s]}@' for s in truth['poolStyles'])
        everything = PairSet(shards(os.path.join(args.data, 'reference')), tok, cfg)
        heldout = everything.subset([i for i, u in enumerate(everything.urls) if u.startswith(packages)])
        print(f'held-out set: {len(heldout)} clean pairs in the pool styles, of emoji kept out of the pool', flush=True)

    reference: Optional[CompactCLIP] = None
    if args.stage in ('all', 'reference'):
        t0 = time.time()
        ref_data = PairSet(shards(os.path.join(args.data, 'reference')), tok, cfg)
        print(f'reference set: {len(ref_data)} pairs ({time.time() - t0:.0f} s to read)', flush=True)
        reference = build_init(cfg, kept, args.seed)
        train(reference, ref_data, args.reference_steps, args.batch, args.lr, args.data_seed, 'reference')
        acc = zero_shot(reference)
        print(f'reference: zero-shot top-1 of the pool images among their {len(names)} names: {acc:.3f}',
              flush=True)
        if args.reference_checkpoint:
            torch.save(reference.state_dict(), args.reference_checkpoint)
        recipe = {'base': {'kind': 'trained', **common, 'data': {**data_info, 'set': 'reference'}, 'lr': args.lr,
                           'steps': args.reference_steps, 'pool_zero_shot_top1': round(acc, 4)}, 'perturb': []}
        export(reference, os.path.join(args.out, 'demo-reference'), 'demo-reference', vocab, recipe, args.verify)

    if args.stage in ('all', 'proxies'):
        def save(step: int, m: CompactCLIP) -> None:
            m.eval()
            acc = zero_shot(m)
            print(f'proxy step {step}: zero-shot top-1 of the pool images: {acc:.3f}', flush=True)
            if heldout is not None:
                i2t, t2i = retrieval_top1(m, heldout)
                print(f'proxy step {step}: held-out retrieval top-1 image->text {i2t:.4f} text->image {t2i:.4f}',
                      flush=True)
            name = f'{args.proxy_prefix}-{step}'
            recipe = {'base': {'kind': 'trained', **common, 'data': {**data_info, 'set': 'pool'},
                               'proxy_mode': args.proxy_mode, 'online_tau': args.online_tau,
                               **({'oracle_clean': True} if args.oracle_clean else {}),
                               'lr': args.proxy_lr if args.proxy_mode == 'heads' else args.lr,
                               'steps': step, 'run_steps': proxy_steps[-1], 'pool_zero_shot_top1': round(acc, 4)},
                      'perturb': []}
            export(m, os.path.join(args.out, name), name, vocab, recipe, args.verify)

        train_set = pool
        if args.oracle_clean:
            train_set = pool.subset([i for i, u in enumerate(pool.uids) if rows[u]['label'] == 'clean'])
            print(f'oracle: training the proxies on the {len(train_set)} clean pairs of the pool', flush=True)
        if args.proxy_mode == 'heads':
            if reference is None:
                reference = CompactCLIP(cfg, kept)
                reference.load_state_dict(torch.load(args.reference_checkpoint))
            ref_heads = (reference.visual.proj.detach().clone(), reference.text_projection.detach().clone())
            if heldout is not None:
                i2t, t2i = retrieval_top1(reference.eval(), heldout)
                print(f'reference: held-out retrieval top-1 image->text {i2t:.4f} text->image {t2i:.4f}', flush=True)
            proxy = reference  # the reference is exported already: its encoders are reused, its heads replaced
            proxy.eval()
            train_heads(proxy, init, train_set, proxy_steps[-1], args.batch, args.proxy_lr, args.data_seed + 1,
                        proxy_steps, save, online_tau=args.online_tau, ref_heads=ref_heads)
        else:
            proxy = build_init(cfg, kept, args.seed)
            train(proxy, train_set, proxy_steps[-1], args.batch, args.lr, args.data_seed + 1, 'proxy', proxy_steps, save)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except eb.ExportError as e:
        print(f'train_tiny_clip: error: {e}', file=sys.stderr)
        sys.exit(2)
