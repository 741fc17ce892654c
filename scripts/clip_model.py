"""A CLIP in plain PyTorch, laid out like OpenCLIP's `CLIP` class so that its state dict uses OpenCLIP's key names.

Image tower: a ViT with a class token (OpenAI's layout: conv patch embedding without bias, class token, positional
embedding, ln_pre, pre-norm residual blocks, ln_post on the class token). Text tower: a causal transformer pooled
at the end-of-text token, found as the argmax of the ids (the end token has the largest id in CLIP's vocabulary),
after ln_final, as OpenCLIP does. Projections are `[D, P]` matrices applied as `h @ W` (OpenCLIP's orientation).

Attention is written out instead of using `nn.MultiheadAttention`: PyTorch 1.13's fused fast path does not export
to ONNX reliably, and spelling it out keeps the exported graph and the reference maths visibly the same. The
parameter names still match `nn.MultiheadAttention` (`in_proj_weight`, `in_proj_bias`, `out_proj`).

Random initialisation is drawn parameter by parameter, in sorted name order, from one seeded generator, so a
(config, seed) pair always gives the same weights regardless of module construction order or PyTorch's global RNG.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_VOCAB_SIZE = 49408
CLIP_SOT = 49406
CLIP_EOT = 49407


@dataclass(frozen=True)
class VisionConfig:
    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class TextConfig:
    context_length: int
    vocab_size: int
    width: int
    layers: int
    heads: int
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class ClipConfig:
    embed_dim: int
    vision: VisionConfig
    text: TextConfig
    # OpenAI's released CLIPs use QuickGELU; OpenCLIP models trained from scratch mostly use exact GELU.
    act: str = 'quick_gelu'

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> 'ClipConfig':
        return ClipConfig(embed_dim=int(d['embed_dim']), vision=VisionConfig(**d['vision']),
                          text=TextConfig(**d['text']), act=str(d.get('act', 'quick_gelu')))


CONFIGS: Dict[str, ClipConfig] = {
    # For tests: different widths for the two towers and the projection, so that a transposed or swapped head
    # can never pass a shape check; the full CLIP vocabulary so real captions tokenize to valid ids.
    'tiny': ClipConfig(
        embed_dim=32,
        vision=VisionConfig(image_size=32, patch_size=8, width=64, layers=2, heads=4),
        text=TextConfig(context_length=77, vocab_size=CLIP_VOCAB_SIZE, width=48, layers=2, heads=4),
    ),
    # OpenAI's ViT-B/32 sizes (about 151M parameters).
    'vit-b-32': ClipConfig(
        embed_dim=512,
        vision=VisionConfig(image_size=224, patch_size=32, width=768, layers=12, heads=12),
        text=TextConfig(context_length=77, vocab_size=CLIP_VOCAB_SIZE, width=512, layers=12, heads=8),
    ),
}


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_act(name: str) -> nn.Module:
    if name == 'quick_gelu':
        return QuickGELU()
    if name == 'gelu':
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r} (use 'quick_gelu' or 'gelu')")


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads != 0:
            raise ValueError(f'width {width} is not divisible by {heads} heads')
        self.heads = heads
        self.head_dim = width // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        n, width = x.shape[1], x.shape[2]
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # The batch axis stays symbolic (-1) so that the exported graph accepts any batch size.
        q = q.reshape(-1, n, self.heads, self.head_dim).transpose(1, 2)
        k = k.reshape(-1, n, self.heads, self.head_dim).transpose(1, 2)
        v = v.reshape(-1, n, self.heads, self.head_dim).transpose(1, 2)
        attn = (q * (self.head_dim ** -0.5)) @ k.transpose(-2, -1)
        if mask is not None:
            attn = attn + mask
        out = attn.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(-1, n, width))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, act: str):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ('c_fc', nn.Linear(width, hidden)),
            ('gelu', make_act(act)),
            ('c_proj', nn.Linear(hidden, width)),
        ]))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, act: str):
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, act) for _ in range(layers)])

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, cfg: VisionConfig, embed_dim: int, act: str):
        super().__init__()
        if cfg.image_size % cfg.patch_size != 0:
            raise ValueError(f'image size {cfg.image_size} is not a multiple of patch size {cfg.patch_size}')
        grid = cfg.image_size // cfg.patch_size
        self.cfg = cfg
        self.conv1 = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(cfg.width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, act)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.proj = nn.Parameter(torch.empty(cfg.width, embed_dim))

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled image features [B, width], before the projection."""
        x = self.conv1(pixel_values)
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.reshape(1, 1, -1).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :])


class CLIP(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.cfg = cfg
        t = cfg.text
        self.visual = VisionTransformer(cfg.vision, cfg.embed_dim, cfg.act)
        self.token_embedding = nn.Embedding(t.vocab_size, t.width)
        self.positional_embedding = nn.Parameter(torch.empty(t.context_length, t.width))
        self.transformer = Transformer(t.width, t.layers, t.heads, t.mlp_ratio, cfg.act)
        self.ln_final = nn.LayerNorm(t.width)
        self.text_projection = nn.Parameter(torch.empty(t.width, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # Not persistent: OpenCLIP does not save the mask either, so state dicts stay interchangeable.
        mask = torch.full((t.context_length, t.context_length), float('-inf')).triu(1)
        self.register_buffer('attn_mask', mask, persistent=False)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual.features(pixel_values)

    def token_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings [B, L, width]; a model with another lookup (e.g. a compact table) overrides this."""
        return self.token_embedding(input_ids)

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Pooled text features [B, width] at the end-of-text token, before the projection.

        Any length L <= context_length is accepted: the positional embedding and the causal mask are cut to L.
        Because the mask is causal, no position sees a later one, so the features pooled at the end token do not
        depend on what follows it: ids cut after the batch's last end token give the same features (up to float
        rounding of the smaller matrix products) as the padded ones, at a fraction of the cost. The cut is
        traced from the input's shape, so the exported graph keeps L symbolic.
        """
        n = input_ids.shape[1]
        x = self.token_features(input_ids) + self.positional_embedding[:n]
        x = self.ln_final(self.transformer(x, self.attn_mask[:n, :n]))
        eot = input_ids.argmax(dim=-1)
        # gather rather than advanced indexing: it exports to a single GatherElements node; flatten rather than
        # squeeze, which becomes an If node once the sequence axis is symbolic.
        index = eot.reshape(-1, 1, 1).expand(-1, 1, x.shape[2])
        return torch.gather(x, 1, index).flatten(1)

    def embed(self, pixel_values: torch.Tensor, input_ids: torch.Tensor):
        x = F.normalize(self.image_features(pixel_values) @ self.visual.proj, dim=-1)
        y = F.normalize(self.text_features(input_ids) @ self.text_projection, dim=-1)
        return x, y


class ImageFeatures(nn.Module):
    """The exported image encoder: pixel_values -> image_features."""

    def __init__(self, model: CLIP):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.image_features(pixel_values)


class TextFeatures(nn.Module):
    """The exported text encoder: input_ids -> text_features."""

    def __init__(self, model: CLIP):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.text_features(input_ids)


def _init_std(name: str, shape, cfg: ClipConfig) -> float:
    """OpenCLIP's initialisation scales for the weights that are drawn at random."""
    width, layers = ((cfg.vision.width, cfg.vision.layers) if name.startswith('visual.')
                     else (cfg.text.width, cfg.text.layers))
    if name == 'token_embedding.weight':
        return 0.02
    if name == 'positional_embedding':
        return 0.01
    if name in ('visual.class_embedding', 'visual.positional_embedding', 'visual.proj', 'text_projection'):
        return width ** -0.5
    if name == 'visual.conv1.weight':
        return (3 * shape[2] * shape[3]) ** -0.5
    if name.endswith('attn.in_proj_weight'):
        return width ** -0.5
    if name.endswith('attn.out_proj.weight') or name.endswith('mlp.c_proj.weight'):
        return (width ** -0.5) * ((2 * layers) ** -0.5)
    if name.endswith('mlp.c_fc.weight'):
        return (2 * width) ** -0.5
    raise KeyError(f'no initialisation rule for {name}')


def init_parameters(model: nn.Module, cfg: ClipConfig, seed: int) -> None:
    """OpenCLIP's initialisation scales, drawn parameter by parameter in name order from one seeded generator."""
    norms = {f'{m_name}.weight' for m_name, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith('bias'):
                p.zero_()
            elif name in norms:
                p.fill_(1.0)
            elif name == 'logit_scale':
                p.fill_(math.log(1 / 0.07))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * _init_std(name, p.shape, cfg))


def build_random(cfg: ClipConfig, seed: int) -> CLIP:
    model = CLIP(cfg)
    init_parameters(model, cfg, seed)
    return model.eval()


def perturb_(model: CLIP, eps: float, seed: int) -> None:
    """Add noise of relative size eps to every parameter: W += eps * rms(W) * N(0, 1), so ‖ΔW‖/‖W‖ ≈ eps.

    A model made this way shares the lineage of the original (same basis), like a proxy fine-tuned from it.
    """
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            rms = p.pow(2).mean().sqrt()
            p.add_(torch.randn(p.shape, generator=gen) * (eps * rms))


def config_with(cfg: ClipConfig, context_length: Optional[int] = None, embed_dim: Optional[int] = None) -> ClipConfig:
    if context_length is not None:
        cfg = replace(cfg, text=replace(cfg.text, context_length=int(context_length)))
    if embed_dim is not None:
        cfg = replace(cfg, embed_dim=int(embed_dim))
    return cfg
