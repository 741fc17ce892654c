#!/usr/bin/python3
"""Write a `mimic-clip/1` model bundle (DESIGN.md §4) from a CLIP defined in PyTorch.

A bundle is a folder:
  model.json          format, name, image {size, mean, std, resize, interpolation},
                      text {tokenizer, vocab, context_length, pad_id}, check, source (how it was made)
  visual.onnx         pixel_values float32 [B,3,S,S] -> image_features float32 [B,Dv] (pooled, before projection)
  textual.onnx        input_ids int64 [B,L]          -> text_features float32 [B,Dt]  (pooled, before projection);
                      L is symbolic (any length up to text.context_length) unless --text-length fixed
  heads.safetensors   visual_projection [Dv,P], text_projection [Dt,P], logit_scale [] (log space), float32
  <vocab>             the tokenizer's vocabulary (CLIP's bpe_simple_vocab_16e6.txt.gz)
  check.safetensors   a few fixed inputs and the source model's features and embeddings for them, so that any
                      later reader (`mimic check --proxy DIR`) can prove the ONNX files and heads reproduce it

Sources (exactly one):
  --config tiny|vit-b-32 --seed N   random weights, OpenCLIP's initialisation scales, deterministic per seed
  --from-checkpoint PATH            a local OpenCLIP / OpenAI / Hugging Face CLIP checkpoint (never downloaded):
      * OpenCLIP or OpenAI: a torch state dict (.pt/.bin/.pth, optionally under "state_dict", "module." prefixes
        are stripped), an OpenAI TorchScript archive (ViT-B-32.pt), or a .safetensors file, with OpenCLIP's key
        names (visual.conv1.weight, visual.transformer.resblocks.N.attn.in_proj_weight, ..., visual.proj [Dv,P],
        text_projection [Dt,P], logit_scale). Give --act: quick_gelu for OpenAI weights and OpenCLIP's
        "-quickgelu" models, gelu for other OpenCLIP models (TorchScript archives are always quick_gelu).
      * Hugging Face: a transformers CLIPModel folder (model.safetensors or pytorch_model.bin, config.json,
        optionally preprocessor_config.json) or the weights file alone. Keys vision_model.*, text_model.*,
        visual_projection.weight and text_projection.weight; the projections are nn.Linear weights [P,D] and are
        TRANSPOSED here into the bundle's [D,P]. Heads, activation and normalisation come from config.json and
        preprocessor_config.json when present.
      Layer counts, widths, patch size, image size, context length and vocabulary size are read from the tensor
      shapes. Attention heads are not: they come from config.json (Hugging Face), --visual-heads/--text-heads, or
      the released CLIP sizes (image width 768/1024/1280/1408/1664 -> 12/16/16/16/16 heads, text width
      512/768/1024/1280 -> 8/12/16/20); anything else must be given. Only ViT image towers with CLIP's BPE
      vocabulary are supported.
  --init-from BUNDLE|CHECKPOINT     start from the weights of an existing bundle (rebuilt from the recipe in its
                                    model.json and checked bit for bit against its heads) or checkpoint; use with
                                    --perturb to make a proxy that shares the reference's lineage.

--text-length dynamic (default) exports textual.onnx with a symbolic sequence axis: the positional embedding and
the causal mask are cut to the input's length inside the graph, so a caller may cut each batch's ids after its last
end-of-text token (mimic does) and get the same features, up to float rounding, for a fraction of the text
encoder's cost. The export checks that in PyTorch (check captions cut to their batch's longest) and `mimic check`
runs the ONNX file on them at several lengths. --text-length fixed keeps L = context_length (for runtimes that
need static shapes); a model whose text tower cannot run on a cut length is exported fixed, with a note.

--perturb EPS adds noise of relative size EPS to every parameter (W += EPS * rms(W) * N(0,1), seeded by --seed), so
that ‖W' − W‖/‖W‖ ≈ EPS: the result shares the lineage (feature basis) of the model it came from.

Every export checks itself: the ONNX files are validated with onnx.checker and their inputs and outputs with the
bundle's contract; the heads are compared with the source checkpoint's own projection tensors applied with the
source's semantics (a transposed square head cannot slip through); when transformers or open_clip are installed,
the source model's embeddings are compared with ours; and the ONNX files are run on the check inputs by
onnxruntime through `node bin/mimic check --proxy OUT` (--verify auto runs it when the project is built, required
fails without it, skip leaves it to the user).

Everything is written to a temporary folder next to OUT and renamed into place at the end.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_model as cm  # noqa: E402
import safetensors_io as st  # noqa: E402

FORMAT = 'mimic-clip/1'
OPSET = 17
CHECK_BATCH = 3
CHECK_SEED = 20250110
# Float32 through a different runtime: features agree to ~1e-6 in practice; this leaves room for other CPUs.
CHECK_RTOL = 1e-4
# Text features of ids cut after the batch's last end token against the full-length ones, in PyTorch: only the
# matrix products' shapes differ (measured 5e-7 on tiny, 8e-7 on ViT-B/32 sizes), so 1e-5 flags any real dependence.
TRIM_RTOL = 1e-5
REPO = os.path.dirname(HERE)


class ExportError(Exception):
    """A problem with the user's input: printed as one line, without a traceback."""


# ----------------------------------------------------------------------------------------------- checkpoints

def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _weights_file(path: str) -> str:
    if os.path.isdir(path):
        for name in ('model.safetensors', 'open_clip_model.safetensors', 'pytorch_model.bin',
                     'open_clip_pytorch_model.bin'):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise ExportError(f'{path}: no model.safetensors, pytorch_model.bin or open_clip_*.{{safetensors,bin}} in '
                          f'this folder')
    if not os.path.isfile(path):
        raise ExportError(f'{path}: no such checkpoint file (only local files are read; nothing is downloaded)')
    return path


def read_state_dict(path: str) -> Tuple[Dict[str, torch.Tensor], bool]:
    """The checkpoint's tensors, and whether it was an OpenAI TorchScript archive."""
    if path.endswith('.safetensors'):
        try:
            return st.load(path)[0], False
        except (ValueError, json.JSONDecodeError) as e:
            raise ExportError(f'{path}: not a readable safetensors file ({e})')
    try:
        return torch.jit.load(path, map_location='cpu').state_dict(), True
    except Exception:
        pass  # not TorchScript: a pickled state dict
    try:
        obj = torch.load(path, map_location='cpu')
    except Exception as e:
        raise ExportError(f'{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e})')
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ExportError(f'{path}: expected a state dict of tensors (or {{"state_dict": ...}})')
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return obj, False


def hf_to_openclip(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a transformers CLIPModel state dict to OpenCLIP's layout; projections go from [P,D] to [D,P]."""
    sd = {k[len('model.'):] if k.startswith('model.') else k: v for k, v in sd.items()}
    out: Dict[str, torch.Tensor] = {}
    used = set()

    def take(src: str) -> torch.Tensor:
        if src not in sd:
            raise ExportError(f'Hugging Face checkpoint lacks {src}')
        used.add(src)
        return sd[src]

    def tower(hf: str, oc: str) -> None:
        n = 0
        while f'{hf}.encoder.layers.{n}.layer_norm1.weight' in sd:
            n += 1
        if n == 0:
            raise ExportError(f'Hugging Face checkpoint has no {hf}.encoder.layers.*')
        for i in range(n):
            a, b = f'{hf}.encoder.layers.{i}', f'{oc}.resblocks.{i}'
            for part in ('weight', 'bias'):
                out[f'{b}.attn.in_proj_{part}'] = torch.cat(
                    [take(f'{a}.self_attn.{x}_proj.{part}') for x in ('q', 'k', 'v')], dim=0)
                out[f'{b}.attn.out_proj.{part}'] = take(f'{a}.self_attn.out_proj.{part}')
                out[f'{b}.ln_1.{part}'] = take(f'{a}.layer_norm1.{part}')
                out[f'{b}.ln_2.{part}'] = take(f'{a}.layer_norm2.{part}')
                out[f'{b}.mlp.c_fc.{part}'] = take(f'{a}.mlp.fc1.{part}')
                out[f'{b}.mlp.c_proj.{part}'] = take(f'{a}.mlp.fc2.{part}')

    out['visual.class_embedding'] = take('vision_model.embeddings.class_embedding')
    out['visual.conv1.weight'] = take('vision_model.embeddings.patch_embedding.weight')
    out['visual.positional_embedding'] = take('vision_model.embeddings.position_embedding.weight')
    for part in ('weight', 'bias'):
        out[f'visual.ln_pre.{part}'] = take(f'vision_model.pre_layrnorm.{part}')
        out[f'visual.ln_post.{part}'] = take(f'vision_model.post_layernorm.{part}')
        out[f'ln_final.{part}'] = take(f'text_model.final_layer_norm.{part}')
    tower('vision_model', 'visual.transformer')
    tower('text_model', 'transformer')
    out['token_embedding.weight'] = take('text_model.embeddings.token_embedding.weight')
    out['positional_embedding'] = take('text_model.embeddings.position_embedding.weight')
    out['visual.proj'] = take('visual_projection.weight').t().contiguous()
    out['text_projection'] = take('text_projection.weight').t().contiguous()
    out['logit_scale'] = take('logit_scale').reshape(())
    left = sorted(k for k in sd if k not in used and not k.endswith('position_ids'))
    if left:
        raise ExportError(f'Hugging Face checkpoint has tensors this exporter does not map: {left[:5]}'
                          f'{" ..." if len(left) > 5 else ""}')
    return out


def detect_format(sd: Dict[str, torch.Tensor]) -> str:
    keys = set(sd)
    if any(k.startswith(('vision_model.', 'model.vision_model.')) for k in keys):
        return 'hf'
    if 'visual.conv1.weight' in keys and 'token_embedding.weight' in keys:
        return 'openclip'
    if any(k.startswith('visual.trunk.') for k in keys):
        raise ExportError('this OpenCLIP checkpoint has a timm image tower (visual.trunk.*): only CLIP ViTs are '
                          'supported')
    if 'visual.attnpool.c_proj.weight' in keys:
        raise ExportError('this checkpoint has a ResNet image tower (visual.attnpool): only CLIP ViTs are '
                          'supported')
    raise ExportError(f'not an OpenCLIP or Hugging Face CLIP state dict (first keys: {sorted(keys)[:5]})')


# Attention heads are not visible in the weights. These are the released OpenAI / OpenCLIP ViT towers (image:
# B, L, H, g, bigG; text: B, L, H/g, bigG); any other width needs --visual-heads / --text-heads.
KNOWN_VISUAL_HEADS = {768: 12, 1024: 16, 1280: 16, 1408: 16, 1664: 16}
KNOWN_TEXT_HEADS = {512: 8, 768: 12, 1024: 16, 1280: 20}


def _heads(given: Optional[int], width: int, known: Dict[int, int], flag: str) -> int:
    heads = given or known.get(width)
    if not heads:
        raise ExportError(f'the number of attention heads of a width-{width} tower is not stored in the weights and '
                          f'is not a released CLIP size: give {flag}')
    if width % heads:
        raise ExportError(f'{flag} {heads} does not divide the tower width {width}')
    return heads


def infer_config(sd: Dict[str, torch.Tensor], visual_heads: Optional[int], text_heads: Optional[int],
                 act: str) -> cm.ClipConfig:
    """Architecture from tensor shapes (as OpenAI's build_model reads them), in OpenCLIP's key names."""
    vw = sd['visual.conv1.weight'].shape[0]
    patch = sd['visual.conv1.weight'].shape[-1]
    grid = round((sd['visual.positional_embedding'].shape[0] - 1) ** 0.5)
    vlayers = len({k.split('.')[3] for k in sd if k.startswith('visual.transformer.resblocks.')})
    tw = sd['ln_final.weight'].shape[0]
    tlayers = len({k.split('.')[2] for k in sd if k.startswith('transformer.resblocks.')})
    visual_heads = _heads(visual_heads, vw, KNOWN_VISUAL_HEADS, '--visual-heads')
    text_heads = _heads(text_heads, tw, KNOWN_TEXT_HEADS, '--text-heads')
    cfg = cm.ClipConfig(
        embed_dim=sd['text_projection'].shape[1],
        vision=cm.VisionConfig(image_size=grid * patch, patch_size=patch, width=vw, layers=vlayers,
                               heads=visual_heads),
        text=cm.TextConfig(context_length=sd['positional_embedding'].shape[0],
                           vocab_size=sd['token_embedding.weight'].shape[0], width=tw, layers=tlayers,
                           heads=text_heads),
        act=act)
    if sd['visual.proj'].shape[1] != cfg.embed_dim:
        raise ExportError(f'visual.proj {tuple(sd["visual.proj"].shape)} and text_projection '
                          f'{tuple(sd["text_projection"].shape)} disagree on the embedding size')
    return cfg


class Source:
    """A checkpoint read and mapped to OpenCLIP's layout, with what is needed to check the export against it."""

    def __init__(self, path: str, act: Optional[str], visual_heads: Optional[int], text_heads: Optional[int]):
        self.path = _weights_file(path)
        self.folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        raw, jit = read_state_dict(self.path)
        self.raw = raw
        self.format = detect_format(raw)
        self.hf_config = self._json('config.json') if self.format == 'hf' else None
        self.hf_pre = self._json('preprocessor_config.json') if self.format == 'hf' else None
        vh, th = visual_heads, text_heads
        if self.hf_config:
            vc, tc = self.hf_config.get('vision_config', {}), self.hf_config.get('text_config', {})
            vh = vh or vc.get('num_attention_heads')
            th = th or tc.get('num_attention_heads')
            hf_act = vc.get('hidden_act') or tc.get('hidden_act')
            if act and hf_act and act != hf_act:
                raise ExportError(f'--act {act} contradicts config.json (hidden_act {hf_act})')
            act = act or hf_act
            for c in (vc, tc):
                eps = c.get('layer_norm_eps', 1e-5)
                if abs(eps - 1e-5) > 1e-12:
                    raise ExportError(f'config.json has layer_norm_eps {eps}; this exporter builds LayerNorm '
                                      f'with 1e-5')
        if jit and not act:
            act = 'quick_gelu'  # OpenAI's TorchScript archives are all QuickGELU models
        if not act:
            raise ExportError('give --act quick_gelu|gelu: the activation is not stored in the weights (OpenAI '
                              'weights and OpenCLIP "-quickgelu" models: quick_gelu; other OpenCLIP models: gelu)')
        self.sd = hf_to_openclip(raw) if self.format == 'hf' else dict(raw)
        self.sd.pop('attn_mask', None)
        self.sd.pop('visual.attn_mask', None)
        self.config = infer_config(self.sd, vh, th, act)

    def _json(self, name: str) -> Optional[dict]:
        p = os.path.join(self.folder, name)
        if not os.path.isfile(p):
            return None
        with open(p) as f:
            return json.load(f)

    def build(self) -> cm.CLIP:
        model = cm.CLIP(self.config)
        sd = {k: v.float() for k, v in self.sd.items()}
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ExportError(f'{self.path}: the weights do not fit a CLIP ViT ({str(e).splitlines()[0]} ...)')
        return model.eval()

    def source_embeddings(self, model: cm.CLIP, pixels: torch.Tensor, ids: torch.Tensor):
        """Embeddings with the checkpoint's own projection tensors and semantics (not through our mapping)."""
        hi, ht = model.image_features(pixels), model.text_features(ids)
        if self.format == 'hf':
            u = F.linear(hi, self.raw_key('visual_projection.weight').float())
            v = F.linear(ht, self.raw_key('text_projection.weight').float())
        else:
            u = hi @ self.raw_key('visual.proj').float()
            v = ht @ self.raw_key('text_projection').float()
        return F.normalize(u, dim=-1), F.normalize(v, dim=-1)

    def raw_key(self, k: str) -> torch.Tensor:
        return self.raw[k] if k in self.raw else self.raw['model.' + k]


# ------------------------------------------------------------------------------------------------- recipes

def build_from_recipe(recipe: dict, args: argparse.Namespace) -> Tuple[cm.CLIP, Optional[Source]]:
    """Rebuild the weights a recipe describes: a base (random or checkpoint), then perturbation steps."""
    base = recipe['base']
    source = None
    if base['kind'] == 'random':
        model = cm.build_random(cm.ClipConfig.from_dict(base['config']), base['seed'])
    elif base['kind'] == 'checkpoint':
        # A recipe replayed from a bundle carries the resolved architecture; flags fill in a first export.
        arch = base.get('config') or {}
        source = Source(base['path'], base.get('act') or args.act,
                        (arch.get('vision') or {}).get('heads') or args.visual_heads,
                        (arch.get('text') or {}).get('heads') or args.text_heads)
        digest = sha256_file(source.path)
        if base.get('sha256') and digest != base['sha256']:
            raise ExportError(f'{source.path}: the checkpoint changed since the bundle was made (sha256 '
                              f'{digest[:12]}…, recorded {base["sha256"][:12]}…)')
        base['sha256'] = digest
        base['format'] = source.format
        base['config'] = source.config.to_dict()
        base['act'] = source.config.act
        model = source.build()
    else:
        raise ExportError(f'unknown recipe base {base["kind"]!r}')
    for step in recipe.get('perturb', []):
        cm.perturb_(model, float(step['eps']), int(step['seed']))
    return model, source


def recipe_from_bundle(folder: str, args: argparse.Namespace) -> Tuple[dict, cm.CLIP]:
    path = os.path.join(folder, 'model.json')
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f'{path}: cannot read the bundle manifest ({e})')
    recipe = (manifest.get('source') or {}).get('recipe')
    if not recipe:
        raise ExportError(f'{path}: the bundle records no recipe, so its PyTorch weights cannot be rebuilt; '
                          f'use --init-from with the checkpoint it was exported from')
    model, _ = build_from_recipe(json.loads(json.dumps(recipe)), args)
    heads, _ = st.load(os.path.join(folder, 'heads.safetensors'))
    mine = head_tensors(model)
    for k in mine:
        if not torch.equal(mine[k], heads[k]):
            raise ExportError(f'{folder}: rebuilding the bundle from its recipe does not reproduce its {k}; '
                              f'the bundle was edited or made by another exporter version')
    return recipe, model


# -------------------------------------------------------------------------------------------------- export

def head_tensors(model: cm.CLIP) -> Dict[str, torch.Tensor]:
    return {
        'visual_projection': model.visual.proj.detach().float().contiguous(),
        'text_projection': model.text_projection.detach().float().contiguous(),
        'logit_scale': model.logit_scale.detach().float().reshape(()),
    }


def check_inputs(cfg: cm.ClipConfig, mean, std) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fixed inputs: normalised random images, and captions of length 0, short and exactly full context."""
    gen = torch.Generator().manual_seed(CHECK_SEED)
    s, length = cfg.vision.image_size, cfg.text.context_length
    pixels = torch.rand((CHECK_BATCH, 3, s, s), generator=gen)
    pixels = (pixels - torch.tensor(mean).reshape(1, 3, 1, 1)) / torch.tensor(std).reshape(1, 3, 1, 1)
    ids = torch.zeros((CHECK_BATCH, length), dtype=torch.int64)
    lengths = [min(6, length - 2), 0, length - 2]
    for b, n in enumerate(lengths):
        ids[b, 0] = cm.CLIP_SOT
        ids[b, 1:1 + n] = torch.randint(0, cm.CLIP_SOT, (n,), generator=gen)
        ids[b, 1 + n] = cm.CLIP_EOT
    return pixels.float(), ids


def onnx_module():
    """The onnx package, or None: a GPU machine's PyTorch may come without it (checks are then skipped, and said)."""
    try:
        import onnx
        return onnx
    except ImportError:
        return None


def torch_export_kwargs() -> dict:
    # PyTorch >= 2.5 takes `dynamo` and newer versions default to the dynamo exporter (which needs onnxscript);
    # this exporter is written for the TorchScript one.
    import inspect
    return {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters else {}


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: str, inp: str, out: str, width: int,
                dynamic_length: bool = False) -> None:
    in_axes = {0: 'batch', 1: 'sequence'} if dynamic_length else {0: 'batch'}
    torch.onnx.export(module, (example,), path, input_names=[inp], output_names=[out],
                      dynamic_axes={inp: in_axes, out: {0: 'batch'}}, opset_version=OPSET,
                      do_constant_folding=True, **torch_export_kwargs())
    onnx = onnx_module()
    if onnx is None:
        return  # the feature axis stays symbolic: the bundle loader accepts that
    # PyTorch 1.13 leaves the feature axis symbolic after LayerNormalization; state it, so readers of the
    # graph's signature (and the bundle loader) see [batch, D].
    model = onnx.load(path)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims[1].Clear()
    dims[1].dim_value = width
    onnx.save(model, path)


def check_onnx_contract(path: str, inp: str, in_type: int, in_shape: List, out: str, out_dim: int) -> None:
    import onnx
    onnx.checker.check_model(path)
    # Strict inference fails if the stated output shape contradicts what the graph computes.
    onnx.shape_inference.infer_shapes_path(path, path + '.inferred', strict_mode=True)
    os.remove(path + '.inferred')
    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    ins = [i for i in graph.input if i.name not in inits]
    if [i.name for i in ins] != [inp] or [o.name for o in graph.output] != [out]:
        raise ExportError(f'{path}: inputs {[i.name for i in ins]} / outputs {[o.name for o in graph.output]}, '
                          f'expected [{inp}] / [{out}]')

    def dims(v):
        return [d.dim_value if d.HasField('dim_value') else d.dim_param for d in v.type.tensor_type.shape.dim]
    # A str in in_shape stands for a symbolic axis of any name.
    got = [d if isinstance(d, int) or not isinstance(want, str) else want
           for d, want in zip(dims(ins[0])[1:], in_shape)]
    if ins[0].type.tensor_type.elem_type != in_type or len(dims(ins[0])) != len(in_shape) + 1 or got != in_shape:
        raise ExportError(f'{path}: input {inp} has type {ins[0].type.tensor_type.elem_type} shape {dims(ins[0])}')
    o = graph.output[0]
    if o.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or dims(o)[1:] != [out_dim]:
        raise ExportError(f'{path}: output {out} has shape {dims(o)}, expected [batch, {out_dim}]')
    if not isinstance(dims(ins[0])[0], str) or not isinstance(dims(o)[0], str):
        raise ExportError(f'{path}: the batch axis is not dynamic')


def verify_heads(label: str, ours: Tuple[torch.Tensor, torch.Tensor], theirs: Tuple[torch.Tensor, torch.Tensor],
                 rtol: float = 1e-5) -> float:
    """Compare embeddings made with the bundle's heads against the source's; raises when they differ."""
    worst = 0.0
    for name, a, b in (('image', ours[0], theirs[0]), ('text', ours[1], theirs[1])):
        err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
        worst = max(worst, err)
        if not err <= rtol:
            raise ExportError(f'{label}: {name} embeddings from the bundle heads differ from the source model '
                              f'(max relative error {err:.3g}); a projection is transposed or mis-mapped')
    return worst


def trimmed_text_check(model: cm.CLIP, ids: torch.Tensor, full: torch.Tensor) -> Optional[float]:
    """Features of ids cut after the last end token against the full-length ones: the max relative error, or
    None when the model's text tower cannot run on a cut length (a subclass written for full context only)."""
    keep = [b for b in range(ids.shape[0]) if int(ids[b].argmax()) + 1 < ids.shape[1]]
    if not keep:
        return None
    length = max(int(ids[b].argmax()) + 1 for b in keep)
    try:
        cut = model.text_features(ids[keep, :length])
    except RuntimeError:
        return None
    want = full[keep]
    err = (cut - want).abs().max().item() / max(want.abs().max().item(), 1e-12)
    if not err <= TRIM_RTOL:
        raise ExportError(f'the text features of captions cut after their end token differ from the padded ones '
                          f'(max relative error {err:.3g} > {TRIM_RTOL}): the text tower is not causal or does not '
                          f'pool at the end token; export with --text-length fixed')
    return err


def compare_with_library(source: Source, args, pixels, ids, ours) -> Optional[str]:
    """When the source's own library is installed, compare its embeddings with ours (best effort, optional)."""
    if source.format == 'hf':
        try:
            from transformers import CLIPModel  # type: ignore
        except ImportError:
            return 'transformers not installed: compared against the checkpoint tensors only'
        if not os.path.isfile(os.path.join(source.folder, 'config.json')):
            return 'no config.json beside the weights: compared against the checkpoint tensors only'
        ref = CLIPModel.from_pretrained(source.folder, local_files_only=True).eval()
        with torch.no_grad():
            theirs = (F.normalize(ref.get_image_features(pixel_values=pixels), dim=-1),
                      F.normalize(ref.get_text_features(input_ids=ids), dim=-1))
    else:
        if not args.open_clip_model:
            return 'no --open-clip-model given: compared against the checkpoint tensors only'
        try:
            import open_clip  # type: ignore
        except ImportError:
            return 'open_clip not installed: compared against the checkpoint tensors only'
        ref = open_clip.create_model(args.open_clip_model, pretrained=source.path).eval()
        with torch.no_grad():
            theirs = (F.normalize(ref.encode_image(pixels), dim=-1), F.normalize(ref.encode_text(ids), dim=-1))
    err = verify_heads(f'{source.path} (through {source.format} library)', ours, theirs, rtol=1e-4)
    return f'matches the {source.format} library model (max relative error {err:.2e})'


def default_vocab() -> Optional[str]:
    for p in (os.environ.get('MIMIC_CLIP_VOCAB'),
              os.path.join(REPO, '..', 'shared', 'data', 'bpe_simple_vocab_16e6.txt.gz')):
        if p and os.path.isfile(p):
            return os.path.abspath(p)
    return None


def check_vocab(path: str, vocab_size: int) -> None:
    # CLIP's vocabulary: 256 byte tokens, their 256 word-final forms, 48,894 merges and two special tokens.
    merges = vocab_size - 512 - 2
    try:
        with gzip.open(path, 'rt', encoding='utf-8') as f:
            lines = f.read().split('\n')
    except OSError as e:
        raise ExportError(f'{path}: not a gzip vocabulary file ({e})')
    if len(lines) - 1 < merges:
        raise ExportError(f'{path}: has {len(lines) - 1} merges, a vocabulary of {vocab_size} needs {merges}')


def write_bundle(tmp: str, model: cm.CLIP, args, recipe: dict, source: Optional[Source], mean, std) -> dict:
    cfg = model.cfg
    if cfg.text.vocab_size != cm.CLIP_VOCAB_SIZE:
        raise ExportError(f'the text tower has {cfg.text.vocab_size} tokens; the clip-bpe tokenizer has '
                          f'{cm.CLIP_VOCAB_SIZE}')
    vocab = args.vocab or default_vocab()
    if not vocab:
        raise ExportError('CLIP vocabulary not found: pass --vocab PATH/bpe_simple_vocab_16e6.txt.gz '
                          '(or set MIMIC_CLIP_VOCAB)')
    check_vocab(vocab, cfg.text.vocab_size)
    vocab_name = os.path.basename(vocab)
    shutil.copyfile(vocab, os.path.join(tmp, vocab_name))

    pixels, ids = check_inputs(cfg, mean, std)
    heads = head_tensors(model)
    with torch.no_grad():
        hi, ht = model.image_features(pixels), model.text_features(ids)
        ours = (F.normalize(hi @ heads['visual_projection'], dim=-1),
                F.normalize(ht @ heads['text_projection'], dim=-1))
        notes = []
        if source is not None:
            theirs = source.source_embeddings(model, pixels, ids)
            verify_heads(source.path, ours, theirs)
            notes.append('heads match the checkpoint\'s own projection tensors')
            notes.append(compare_with_library(source, args, pixels, ids, ours))

        export_onnx(cm.ImageFeatures(model), pixels[:2], os.path.join(tmp, 'visual.onnx'),
                    'pixel_values', 'image_features', cfg.vision.width)
        dynamic = getattr(args, 'text_length', 'dynamic') == 'dynamic'
        if dynamic:
            err = trimmed_text_check(model, ids, ht)
            if err is None:
                dynamic = False
                notes.append('text length fixed: the model\'s text tower does not run on ids cut to a shorter length')
            else:
                notes.append(f'text length dynamic: cut captions give the padded features (PyTorch, max relative '
                             f'error {err:.1e})')
        export_onnx(cm.TextFeatures(model), ids[:2], os.path.join(tmp, 'textual.onnx'), 'input_ids',
                    'text_features', cfg.text.width, dynamic_length=dynamic)
    s = cfg.vision.image_size
    if onnx_module() is None:
        notes.append('the onnx package is not installed: the ONNX files were not checked with onnx.checker '
                     '(the bundle loader and `mimic check` still check them)')
    else:
        import onnx
        check_onnx_contract(os.path.join(tmp, 'visual.onnx'), 'pixel_values', onnx.TensorProto.FLOAT, [3, s, s],
                            'image_features', cfg.vision.width)
        check_onnx_contract(os.path.join(tmp, 'textual.onnx'), 'input_ids', onnx.TensorProto.INT64,
                            ['sequence' if dynamic else cfg.text.context_length], 'text_features', cfg.text.width)

    st.save(os.path.join(tmp, 'heads.safetensors'), heads, {'format': FORMAT})
    st.save(os.path.join(tmp, 'check.safetensors'), {
        'pixel_values': pixels, 'input_ids': ids, 'image_features': hi, 'text_features': ht,
        'image_embeds': ours[0], 'text_embeds': ours[1],
    }, {'format': FORMAT, 'rtol': str(CHECK_RTOL)})

    manifest = {
        'format': FORMAT,
        'name': args.name,
        'image': {'size': s, 'mean': [float(x) for x in mean], 'std': [float(x) for x in std],
                  'resize': args.resize, 'interpolation': 'bicubic'},
        'text': {'tokenizer': 'clip-bpe', 'vocab': vocab_name, 'context_length': cfg.text.context_length,
                 'pad_id': 0},
        'check': 'check.safetensors',
        'source': {
            'exporter': 'scripts/export_bundle.py',
            'torch': torch.__version__,
            'opset': OPSET,
            'text_length': 'dynamic' if dynamic else 'fixed',
            'architecture': cfg.to_dict(),
            'recipe': recipe,
        },
    }
    with open(os.path.join(tmp, 'model.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
        f.write('\n')
    return {'notes': [n for n in notes if n]}


def node_verify(out: str, mode: str) -> str:
    main = os.path.join(REPO, 'dist', 'cli', 'main.js')
    node = shutil.which('node')
    if mode == 'skip':
        return f'ONNX run not checked here (--verify skip): run `mimic check --proxy {out}`'
    if not node or not os.path.isfile(main):
        msg = f'node or the built CLI ({main}) is missing, so the ONNX files were not run'
        if mode == 'required':
            raise ExportError(msg + ' (build with `npm run build`, or pass --verify skip)')
        return msg + f': run `mimic check --proxy {out}` once it is built'
    r = subprocess.run([node, os.path.join(REPO, 'bin', 'mimic'), '--log-level', 'warn', 'check', '--proxy', out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ExportError(f'onnxruntime does not reproduce the PyTorch features of {out}:\n{r.stdout}{r.stderr}')
    return 'onnxruntime reproduces the PyTorch features and embeddings (mimic check)'


def add_fp16(folder: str) -> str:
    """fp16 builds of the encoders, by the project's own converter (scripts/add-fp16), before the bundle is placed."""
    node = shutil.which('node')
    if not node or not os.path.isfile(os.path.join(REPO, 'dist', 'model', 'index.js')):
        raise ExportError('--fp16 runs scripts/add-fp16, which needs node and the built project (`npm run build`)')
    r = subprocess.run([node, os.path.join(HERE, 'add-fp16'), folder], capture_output=True, text=True)
    if r.returncode != 0:
        raise ExportError(f'scripts/add-fp16 failed:\n{r.stdout}{r.stderr}')
    return 'fp16 encoders written (visual.fp16.onnx, textual.fp16.onnx; variants.fp16 in model.json)'


def place(tmp: str, out: str, force: bool) -> None:
    if os.path.exists(out):
        if not force:
            raise ExportError(f'{out} exists: pass --force to replace it')
        old = tempfile.mkdtemp(prefix='.old-', dir=os.path.dirname(out))
        os.rename(out, os.path.join(old, 'bundle'))
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', '-o', required=True, help='bundle folder to write')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--config', choices=sorted(cm.CONFIGS), help='random weights of this size')
    src.add_argument('--from-checkpoint', metavar='PATH', help='local OpenCLIP/OpenAI/Hugging Face checkpoint')
    src.add_argument('--init-from', metavar='BUNDLE|CKPT', help='start from an existing bundle or checkpoint')
    p.add_argument('--seed', type=int, default=0, help='random init (with --config) and --perturb noise seed')
    p.add_argument('--perturb', type=float, default=0.0, metavar='EPS',
                   help='add relative noise EPS to every parameter (a proxy sharing the lineage)')
    p.add_argument('--context-length', type=int, help='override the text context length (random configs)')
    p.add_argument('--embed-dim', type=int, help='override the projection size P (random configs)')
    p.add_argument('--name', help='model name recorded in model.json (default: from the source)')
    p.add_argument('--vocab', help='CLIP BPE vocabulary (default: $MIMIC_CLIP_VOCAB or ../shared/data/...)')
    p.add_argument('--mean', type=float, nargs=3, help='image normalisation mean (default: CLIP\'s)')
    p.add_argument('--std', type=float, nargs=3, help='image normalisation std (default: CLIP\'s)')
    p.add_argument('--resize', choices=['shortest', 'squash'], default='shortest',
                   help="'shortest': shorter side to the size, then centre crop (CLIP); 'squash': both sides")
    p.add_argument('--act', choices=['quick_gelu', 'gelu'], help='MLP activation of a checkpoint (see above)')
    p.add_argument('--visual-heads', type=int, help='attention heads of the image tower (see above)')
    p.add_argument('--text-heads', type=int, help='attention heads of the text tower (see above)')
    p.add_argument('--open-clip-model', help='OpenCLIP model name, to compare with open_clip when installed')
    p.add_argument('--save-checkpoint', metavar='PATH',
                   help='also write the weights as an OpenCLIP-style state dict (.pt or .safetensors)')
    p.add_argument('--verify', choices=['auto', 'required', 'skip'], default='auto',
                   help='run the ONNX files with onnxruntime through `mimic check` (default: when built)')
    p.add_argument('--text-length', choices=['dynamic', 'fixed'], default='dynamic',
                   help='textual.onnx sequence axis: symbolic, up to the context length (default), or fixed to it')
    p.add_argument('--fp16', action='store_true',
                   help='also write fp16 encoders (visual.fp16.onnx, textual.fp16.onnx, float32 in and out) with '
                        'scripts/add-fp16, for `mimic score --precision fp16` on GPUs (needs node and the build)')
    p.add_argument('--force', action='store_true', help='replace OUT if it exists')
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    out = os.path.abspath(args.out)
    if (args.context_length or args.embed_dim) and not args.config:
        raise ExportError('--context-length and --embed-dim apply to random configs (--config) only')
    source = None
    mean, std = list(args.mean or cm.CLIP_MEAN), list(args.std or cm.CLIP_STD)
    if args.config:
        cfg = cm.config_with(cm.CONFIGS[args.config], args.context_length, args.embed_dim)
        recipe = {'base': {'kind': 'random', 'preset': args.config, 'config': cfg.to_dict(), 'seed': args.seed},
                  'perturb': []}
        model = cm.build_random(cfg, args.seed)
        default_name = f'{args.config}-seed{args.seed}'
    elif args.from_checkpoint:
        recipe = {'base': {'kind': 'checkpoint', 'path': os.path.abspath(args.from_checkpoint)}, 'perturb': []}
        model, source = build_from_recipe(recipe, args)
        default_name = os.path.basename(os.path.normpath(args.from_checkpoint)).split('.')[0]
        if source.hf_pre and not args.mean:
            mean = source.hf_pre.get('image_mean', mean)
            std = source.hf_pre.get('image_std', std)
    else:
        init = os.path.abspath(args.init_from)
        if os.path.isdir(init) and os.path.isfile(os.path.join(init, 'model.json')):
            recipe, model = recipe_from_bundle(init, args)
            with open(os.path.join(init, 'model.json')) as f:
                ref_manifest = json.load(f)
            mean, std = args.mean or ref_manifest['image']['mean'], args.std or ref_manifest['image']['std']
        else:
            recipe = {'base': {'kind': 'checkpoint', 'path': init}, 'perturb': []}
            model, source = build_from_recipe(recipe, args)
        default_name = os.path.basename(os.path.normpath(init)) + '-derived'
    if args.perturb:
        if args.perturb < 0 or not math.isfinite(args.perturb):
            raise ExportError('--perturb must be a finite number >= 0')
        step = {'eps': args.perturb, 'seed': args.seed + 0x5EED}
        cm.perturb_(model, step['eps'], step['seed'])
        recipe['perturb'].append(step)
        # The checkpoint's own tensors describe the unperturbed model: nothing left to compare them with.
        source = None
        default_name += f'-perturb{args.perturb:g}'
    args.name = args.name or default_name

    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(out)}.tmp-', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make a shared bundle unreadable to others
    try:
        info = write_bundle(tmp, model, args, recipe, source, mean, std)
        if args.fp16:
            info['notes'].append(add_fp16(tmp))
        if args.save_checkpoint:
            sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if args.save_checkpoint.endswith('.safetensors'):
                st.save(args.save_checkpoint, sd)
            else:
                torch.save(sd, args.save_checkpoint)
        place(tmp, out, args.force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    notes = info['notes'] + [node_verify(out, args.verify)]
    cfg = model.cfg
    print(f'wrote {out}: {args.name}, image {cfg.vision.image_size}px -> {cfg.vision.width}, text '
          f'{cfg.text.context_length} tokens -> {cfg.text.width}, projection {cfg.embed_dim}')
    for n in notes:
        print(f'  {n}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except ExportError as e:
        print(f'export_bundle: error: {e}', file=sys.stderr)
        sys.exit(2)
