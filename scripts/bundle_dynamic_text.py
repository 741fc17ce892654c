#!/usr/bin/python3
"""Give existing bundles a textual.onnx with a dynamic sequence axis, keeping their weights bit for bit.

    /usr/bin/python3 scripts/bundle_dynamic_text.py BUNDLE [BUNDLE ...] [--verify auto|required|skip]

For bundles written by scripts/export_bundle.py before it exported the text axis as symbolic (the tool reads the
architecture it recorded in model.json). The text tower's weights are read back from the old textual.onnx
itself, not rebuilt from a recipe: PyTorch's exporter keeps each parameter under its own name (model.<name>)
except the linear layers' weights, which it stores transposed as MatMul inputs, found here by the name of the
MatMul node (/transformer/resblocks.N/mlp/c_fc/MatMul -> transformer.resblocks.N.mlp.c_fc.weight); a compact
token table (model.token_rows, scripts/train_tiny_clip.py) is kept as it is. The tower is then exported again by
export_bundle.py's code with the axis symbolic, and the new file is only written when:
  * every weight in it equals the old file's, bit for bit (both read back by the same mapping);
  * the rebuilt PyTorch tower reproduces the text features in the bundle's check file (the source model's
    outputs, made when the bundle was exported), and gives the same features on captions cut after their end
    token as on padded ones;
  * (--verify) `mimic check` runs the new file with onnxruntime on the check captions, padded and cut.
visual.onnx, heads.safetensors, check.safetensors and the vocabulary are not touched; model.json records
source.text_length = "dynamic" and where the text encoder came from. Each file is replaced by a rename.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import replace
from typing import Dict, List, Optional

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_model as cm  # noqa: E402
import export_bundle as eb  # noqa: E402
import safetensors_io as st  # noqa: E402

# The rebuilt tower against the check file's features: the same weights and operations, so only thread-count
# dependent reduction order separates them.
REBUILD_RTOL = 1e-5


class RowTableCLIP(cm.CLIP):
    """A CLIP whose token embedding is reached through an int16 table from BPE id to row (the demo's layout)."""

    def __init__(self, cfg: cm.ClipConfig, token_rows: torch.Tensor, rows: int):
        super().__init__(replace(cfg, text=replace(cfg.text, vocab_size=1)))
        self.cfg = cfg
        self.token_embedding = nn.Embedding(rows, cfg.text.width)
        self.register_buffer('token_rows', token_rows.clone())

    def token_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(self.token_rows[input_ids].long())


def text_weights(path: str) -> Dict[str, torch.Tensor]:
    """The text tower's tensors in a textual.onnx written by export_bundle.py, under the PyTorch names."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # PyTorch merges equal initializers and reaches the copies through Identity nodes.
    for n in model.graph.node:
        if n.op_type == 'Identity' and n.input[0] in values:
            values[n.output[0]] = values[n.input[0]]
    out: Dict[str, torch.Tensor] = {}
    for name, v in values.items():
        if name.startswith('model.'):
            out[name[len('model.'):]] = torch.from_numpy(v.copy())
    for n in model.graph.node:
        weight = next((i for i in n.input if i in values and not i.startswith('model.')), None)
        if n.op_type != 'MatMul' or weight is None:
            continue
        scope = n.name.rsplit('/', 1)[0].strip('/').replace('/', '.')
        key = f'{scope}.in_proj_weight' if scope.endswith('.attn') else f'{scope}.weight'
        if key in out:
            raise eb.ExportError(f'{path}: two MatMul nodes map to {key}')
        out[key] = torch.from_numpy(values[weight].T.copy())
    return out


def rebuild(folder: str, manifest: dict) -> cm.CLIP:
    arch = (manifest.get('source') or {}).get('architecture')
    if not arch:
        raise eb.ExportError(f'{folder}/model.json records no source.architecture: only bundles written by '
                             f'scripts/export_bundle.py (or the demo trainer) can be converted')
    cfg = cm.ClipConfig.from_dict(arch)
    weights = text_weights(os.path.join(folder, 'textual.onnx'))
    if 'token_rows' in weights:
        model: cm.CLIP = RowTableCLIP(cfg, weights['token_rows'], weights['token_embedding.weight'].shape[0])
    else:
        model = cm.CLIP(cfg)
    text = {k: v for k, v in model.state_dict().items() if not k.startswith('visual.')
            and k not in ('text_projection', 'logit_scale')}
    missing = sorted(set(text) - set(weights))
    extra = sorted(set(weights) - set(text))
    if missing or extra:
        raise eb.ExportError(f'{folder}/textual.onnx does not hold this text tower: missing {missing[:4]}, '
                             f'unexpected {extra[:4]}')
    for k, v in weights.items():
        if tuple(v.shape) != tuple(text[k].shape) or v.dtype != text[k].dtype:
            raise eb.ExportError(f'{folder}/textual.onnx: {k} is {v.dtype} {tuple(v.shape)}, the recorded '
                                 f'architecture needs {text[k].dtype} {tuple(text[k].shape)}')
    model.load_state_dict(weights, strict=False)
    return model.eval()


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def is_dynamic(path: str) -> bool:
    import onnx
    dims = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 2 and not dims[1].HasField('dim_value')


def convert(folder: str, verify: str) -> List[str]:
    folder = os.path.abspath(folder)
    textual = os.path.join(folder, 'textual.onnx')
    with open(os.path.join(folder, 'model.json')) as f:
        manifest = json.load(f)
    if is_dynamic(textual):
        return [f'{folder}: textual.onnx already has a dynamic sequence axis; nothing to do']
    model = rebuild(folder, manifest)
    notes = []

    check, _ = st.load(os.path.join(folder, manifest['check']))
    ids = check['input_ids']
    with torch.no_grad():
        ours = model.text_features(ids)
        want = check['text_features']
        err = (ours - want).abs().max().item() / want.abs().max().item()
        if not err <= REBUILD_RTOL:
            raise eb.ExportError(f'{folder}: the text tower read back from textual.onnx does not reproduce the check '
                                 f'file\'s features (max relative error {err:.3g})')
        notes.append(f'the rebuilt text tower reproduces the check file\'s features (max relative error {err:.1e})')
        cut = eb.trimmed_text_check(model, ids, ours)
        if cut is None:
            raise eb.ExportError(f'{folder}: the rebuilt text tower does not run on a cut length')
        notes.append(f'captions cut after their end token give the padded features (max relative error {cut:.1e})')

        fd, tmp = tempfile.mkstemp(prefix='.textual.onnx.tmp-', dir=folder)
        os.close(fd)
        try:
            eb.export_onnx(cm.TextFeatures(model), ids[:2], tmp, 'input_ids', 'text_features', model.cfg.text.width,
                           dynamic_length=True)
            import onnx
            eb.check_onnx_contract(tmp, 'input_ids', onnx.TensorProto.INT64, ['sequence'], 'text_features',
                                   model.cfg.text.width)
            old, new = text_weights(textual), text_weights(tmp)
            if sorted(old) != sorted(new):
                raise eb.ExportError(f'{folder}: the new textual.onnx holds other tensors than the old one')
            for k in old:
                if old[k].dtype != new[k].dtype or not torch.equal(old[k], new[k]):
                    raise eb.ExportError(f'{folder}: {k} differs between the old and the new textual.onnx')
            notes.append(f'all {len(old)} text-tower tensors equal the old file\'s bit for bit')
            os.chmod(tmp, os.stat(textual).st_mode & 0o777)
            old_sha = sha256(textual)
            os.replace(tmp, textual)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    source = manifest.setdefault('source', {})
    source['text_length'] = 'dynamic'
    source['text_encoder'] = {'rewritten_by': 'scripts/bundle_dynamic_text.py', 'torch': torch.__version__,
                              'previous_sha256': old_sha}
    fd, tmp = tempfile.mkstemp(prefix='.model.json.tmp-', dir=folder)
    with os.fdopen(fd, 'w') as f:
        json.dump(manifest, f, indent=2)
        f.write('\n')
    os.chmod(tmp, os.stat(os.path.join(folder, 'model.json')).st_mode & 0o777)
    os.replace(tmp, os.path.join(folder, 'model.json'))
    notes.append(eb.node_verify(folder, verify))
    return [f'{folder}: textual.onnx now takes any length up to {model.cfg.text.context_length} tokens'] + \
        ['  ' + n for n in notes]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('bundles', nargs='+', help='bundle folders to convert in place')
    p.add_argument('--verify', choices=['auto', 'required', 'skip'], default='auto',
                   help='run the new file with onnxruntime through `mimic check` (default: when built)')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for b in args.bundles:
        for line in convert(b, args.verify):
            print(line, flush=True)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except eb.ExportError as e:
        print(f'bundle_dynamic_text: error: {e}', file=sys.stderr)
        sys.exit(2)
