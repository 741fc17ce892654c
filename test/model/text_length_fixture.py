#!/usr/bin/python3
"""Text towers that break the assumption behind cutting ids after the end token, for test/model/text-length.test.ts.

  noncausal BUNDLE   the tiny seed-1 model with its causal mask removed (every position sees the padding):
                     prints the exporter's refusal, then writes it as BUNDLE/textual.onnx with a symbolic length
                     anyway, as an export from another tool might be
  fullonly OUT       a model whose text tower adds the whole positional table (like the demo trainer's
                     CompactCLIP): export_bundle.write_bundle must fall back to a fixed length and say so
"""
import argparse
import os
import sys
import tempfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import clip_model as cm  # noqa: E402
import export_bundle as eb  # noqa: E402


class FullContextOnly(cm.CLIP):
    def text_features(self, input_ids):
        x = self.token_features(input_ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.attn_mask))
        index = input_ids.argmax(dim=-1).reshape(-1, 1, 1).expand(-1, 1, x.shape[2])
        return torch.gather(x, 1, index).flatten(1)


def noncausal(bundle: str) -> None:
    model = cm.build_random(cm.CONFIGS['tiny'], 1)
    model.attn_mask.zero_()
    pixels, ids = eb.check_inputs(model.cfg, cm.CLIP_MEAN, cm.CLIP_STD)
    with torch.no_grad():
        try:
            eb.trimmed_text_check(model, ids, model.text_features(ids))
            print('accepted')
        except eb.ExportError as e:
            print(f'refused: {e}')
        eb.export_onnx(cm.TextFeatures(model), ids[:2], os.path.join(bundle, 'textual.onnx'), 'input_ids',
                       'text_features', model.cfg.text.width, dynamic_length=True)


def fullonly(out: str) -> None:
    cfg = cm.config_with(cm.CONFIGS['tiny'], context_length=16)
    model = FullContextOnly(cfg)
    model.load_state_dict(cm.build_random(cfg, 1).state_dict())
    tmp = tempfile.mkdtemp(prefix='.fullonly-', dir=os.path.dirname(out))
    ns = argparse.Namespace(vocab=None, name='full-context-only', resize='shortest')
    info = eb.write_bundle(tmp, model.eval(), ns, {'base': {'kind': 'test'}, 'perturb': []}, None,
                           list(cm.CLIP_MEAN), list(cm.CLIP_STD))
    eb.place(tmp, out, force=True)
    for n in info['notes']:
        print(n)


if __name__ == '__main__':
    {'noncausal': noncausal, 'fullonly': fullonly}[sys.argv[1]](sys.argv[2])
