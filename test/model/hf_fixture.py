"""Test fixtures for the checkpoint paths of scripts/export_bundle.py (run with /usr/bin/python3).

transformers is not installed here, so a Hugging Face CLIPModel checkpoint is made from our own random CLIP by
renaming its state dict to transformers' documented key names. The renaming below is written independently of
the exporter's hf_to_openclip (the other direction, tensor by tensor), so that a test comparing the exported
bundle with the original model checks the exporter's mapping rather than repeating it.

  make-hf OUT --seed N [--square]   OUT/model.safetensors + config.json (+ OUT/bin/pytorch_model.bin without config)
  unit                              assertions on the exporter's helpers; prints "ok"
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'scripts'))
import clip_model as cm  # noqa: E402
import export_bundle as eb  # noqa: E402
import safetensors_io as st  # noqa: E402


def to_hf(model: cm.CLIP) -> dict:
    sd = model.state_dict()
    out = {}
    for tower, hf, layers in (('visual.transformer', 'vision_model', model.cfg.vision.layers),
                              ('transformer', 'text_model', model.cfg.text.layers)):
        for i in range(layers):
            a, b = f'{tower}.resblocks.{i}', f'{hf}.encoder.layers.{i}'
            w = sd[f'{a}.attn.in_proj_weight']
            bias = sd[f'{a}.attn.in_proj_bias']
            n = w.shape[1]
            for j, x in enumerate('qkv'):
                out[f'{b}.self_attn.{x}_proj.weight'] = w[j * n:(j + 1) * n].clone()
                out[f'{b}.self_attn.{x}_proj.bias'] = bias[j * n:(j + 1) * n].clone()
            out[f'{b}.self_attn.out_proj.weight'] = sd[f'{a}.attn.out_proj.weight']
            out[f'{b}.self_attn.out_proj.bias'] = sd[f'{a}.attn.out_proj.bias']
            for src, dst in (('ln_1', 'layer_norm1'), ('ln_2', 'layer_norm2'), ('mlp.c_fc', 'mlp.fc1'),
                             ('mlp.c_proj', 'mlp.fc2')):
                out[f'{b}.{dst}.weight'] = sd[f'{a}.{src}.weight']
                out[f'{b}.{dst}.bias'] = sd[f'{a}.{src}.bias']
    out['vision_model.embeddings.class_embedding'] = sd['visual.class_embedding']
    out['vision_model.embeddings.patch_embedding.weight'] = sd['visual.conv1.weight']
    out['vision_model.embeddings.position_embedding.weight'] = sd['visual.positional_embedding']
    out['vision_model.embeddings.position_ids'] = torch.arange(sd['visual.positional_embedding'].shape[0])[None]
    out['vision_model.pre_layrnorm.weight'] = sd['visual.ln_pre.weight']
    out['vision_model.pre_layrnorm.bias'] = sd['visual.ln_pre.bias']
    out['vision_model.post_layernorm.weight'] = sd['visual.ln_post.weight']
    out['vision_model.post_layernorm.bias'] = sd['visual.ln_post.bias']
    out['text_model.embeddings.token_embedding.weight'] = sd['token_embedding.weight']
    out['text_model.embeddings.position_embedding.weight'] = sd['positional_embedding']
    out['text_model.embeddings.position_ids'] = torch.arange(sd['positional_embedding'].shape[0])[None]
    out['text_model.final_layer_norm.weight'] = sd['ln_final.weight']
    out['text_model.final_layer_norm.bias'] = sd['ln_final.bias']
    # nn.Linear(D, P, bias=False).weight is [P, D]: the transpose of OpenCLIP's [D, P] matrix.
    out['visual_projection.weight'] = sd['visual.proj'].t().contiguous()
    out['text_projection.weight'] = sd['text_projection'].t().contiguous()
    out['logit_scale'] = sd['logit_scale']
    return {k: v.contiguous() for k, v in out.items()}


def hf_config(cfg: cm.ClipConfig) -> dict:
    return {
        'architectures': ['CLIPModel'], 'model_type': 'clip', 'projection_dim': cfg.embed_dim,
        'vision_config': {'hidden_size': cfg.vision.width, 'num_hidden_layers': cfg.vision.layers,
                          'num_attention_heads': cfg.vision.heads, 'image_size': cfg.vision.image_size,
                          'patch_size': cfg.vision.patch_size, 'hidden_act': cfg.act, 'layer_norm_eps': 1e-5},
        'text_config': {'hidden_size': cfg.text.width, 'num_hidden_layers': cfg.text.layers,
                        'num_attention_heads': cfg.text.heads, 'max_position_embeddings': cfg.text.context_length,
                        'vocab_size': cfg.text.vocab_size, 'hidden_act': cfg.act, 'layer_norm_eps': 1e-5,
                        'eos_token_id': cm.CLIP_EOT},
    }


def make_hf(out: str, seed: int, square: bool) -> None:
    cfg = cm.CONFIGS['tiny']
    if square:
        cfg = cm.config_with(cfg, embed_dim=cfg.text.width)
    model = cm.build_random(cfg, seed)
    os.makedirs(os.path.join(out, 'bin'), exist_ok=True)
    sd = to_hf(model)
    st.save(os.path.join(out, 'model.safetensors'), sd)
    with open(os.path.join(out, 'config.json'), 'w') as f:
        json.dump(hf_config(cfg), f)
    with open(os.path.join(out, 'preprocessor_config.json'), 'w') as f:
        json.dump({'image_mean': list(cm.CLIP_MEAN), 'image_std': list(cm.CLIP_STD)}, f)
    torch.save(sd, os.path.join(out, 'bin', 'pytorch_model.bin'))


def unit() -> None:
    # The exporter's HF mapping inverts ours exactly.
    model = cm.build_random(cm.CONFIGS['tiny'], 5)
    back = eb.hf_to_openclip(to_hf(model))
    sd = model.state_dict()
    assert set(back) == set(sd), sorted(set(back) ^ set(sd))
    for k in sd:
        assert torch.equal(back[k], sd[k]), k

    # A square text head (Dt = P) passes every shape check the wrong way round; verify_heads must catch it.
    cfg = cm.config_with(cm.CONFIGS['tiny'], embed_dim=cm.CONFIGS['tiny'].text.width)
    sq = cm.build_random(cfg, 6)
    hf = to_hf(sq)
    pixels, ids = eb.check_inputs(cfg, cm.CLIP_MEAN, cm.CLIP_STD)
    with torch.no_grad():
        hi, ht = sq.image_features(pixels), sq.text_features(ids)
        theirs = (F.normalize(F.linear(hi, hf['visual_projection.weight']), dim=-1),
                  F.normalize(F.linear(ht, hf['text_projection.weight']), dim=-1))
        right = (F.normalize(hi @ hf['visual_projection.weight'].t(), dim=-1),
                 F.normalize(ht @ hf['text_projection.weight'].t(), dim=-1))
        wrong = (right[0], F.normalize(ht @ hf['text_projection.weight'], dim=-1))
    eb.verify_heads('right', right, theirs)
    try:
        eb.verify_heads('wrong', wrong, theirs)
    except eb.ExportError as e:
        assert 'transposed' in str(e), str(e)
    else:
        raise AssertionError('a transposed square text head was not detected')

    # Perturbation has the documented relative size and keeps the basis.
    base = cm.build_random(cm.CONFIGS['tiny'], 7)
    moved = cm.build_random(cm.CONFIGS['tiny'], 7)
    cm.perturb_(moved, 0.1, 99)
    w, w2 = base.visual.conv1.weight, moved.visual.conv1.weight
    rel = ((w2 - w).norm() / w.norm()).item()
    assert 0.08 < rel < 0.12, rel

    # Format detection refuses what it cannot map, by name.
    for keys, word in ((['visual.trunk.x'], 'timm'), (['visual.attnpool.c_proj.weight'], 'ResNet'), (['foo'], 'not an')):
        try:
            eb.detect_format({k: torch.zeros(1) for k in keys})
        except eb.ExportError as e:
            assert word in str(e), str(e)
        else:
            raise AssertionError(keys)
    print('ok')


if __name__ == '__main__':
    if sys.argv[1] == 'make-hf':
        make_hf(sys.argv[2], int(sys.argv[sys.argv.index('--seed') + 1]), '--square' in sys.argv)
    elif sys.argv[1] == 'unit':
        unit()
    else:
        raise SystemExit(f'unknown command {sys.argv[1]}')
