#!/usr/bin/python3
"""PyTorch oracle for the mimic score (DESIGN §5): per-sample gradients by autograd in float64.

Writes cases in the golden format of ../shared/golden/heads-v1.json, so the TypeScript implementations can be
checked against cases the golden file does not hold (other B, D, P, logit scales and degenerate batches).

  /usr/bin/python3 scripts/mimic_reference.py --out cases.json [--seed 0] [--suite default]
  /usr/bin/python3 scripts/mimic_reference.py --recompute golden.json --out check.json

Definitions (as in the golden file): x = normalize(H Wv), y = normalize(T Wt) (torch's F.normalize), S = e^s X Yᵀ,
L_i = (CE(S[i,:], i) + CE(S[:,i], i)) / 2 with every in-batch coupling kept, G_i = dL_i/dW by one backward per
sample, D = W_ref - W, mimic_proj = <-G, D>/||D||, mimic_cos = <-G, D>/(||G|| ||D||); both are 0 where their
denominator is 0 (a zero direction, or a zero gradient). 'both' treats [Wv, Wt] as one vector.
"""
import argparse
import json
import math
import os
import sys
import tempfile

import torch
import torch.nn.functional as F


def scores(case):
    """Expected values for one case's inputs, by autograd."""
    inp = case["inputs"]
    t64 = lambda k: torch.tensor(inp[k], dtype=torch.float64)
    h, t = t64("image_features"), t64("text_features")
    wv = t64("visual_projection").requires_grad_(True)
    wt = t64("text_projection").requires_grad_(True)
    dv = t64("ref_visual_projection") - wv.detach()
    dt = t64("ref_text_projection") - wt.detach()
    s = float(case["logit_scale"])
    x = F.normalize(h @ wv, dim=1)
    y = F.normalize(t @ wt, dim=1)
    logits = math.exp(s) * x @ y.T
    b = h.shape[0]
    target = torch.arange(b)
    per_sample = 0.5 * (F.cross_entropy(logits, target, reduction="none")
                        + F.cross_entropy(logits.T, target, reduction="none"))
    loss = 0.5 * (careful_ce(logits) + careful_ce(logits.T))
    rows = {"visual": [], "text": [], "both": []}
    d_norm = {"visual": dv.norm().item(), "text": dt.norm().item()}
    d_norm["both"] = math.sqrt(d_norm["visual"] ** 2 + d_norm["text"] ** 2)
    for i in range(b):
        gv, gt = torch.autograd.grad(per_sample[i], (wv, wt), retain_graph=True)
        dots = {"visual": (gv * dv).sum().item(), "text": (gt * dt).sum().item()}
        norms2 = {"visual": (gv * gv).sum().item(), "text": (gt * gt).sum().item()}
        dots["both"] = dots["visual"] + dots["text"]
        norms2["both"] = norms2["visual"] + norms2["text"]
        for layer in rows:
            g = math.sqrt(norms2[layer])
            dn = d_norm[layer]
            rows[layer].append((g, -dots[layer] / dn if dn > 0 else 0.0,
                                -dots[layer] / (g * dn) if g > 0 and dn > 0 else 0.0))
    expected = {
        "loss": loss.tolist(),
        "clip_sim": (x * y).sum(dim=1).detach().tolist(),
    }
    for layer, vals in rows.items():
        expected[layer] = {
            "grad_norm": [v[0] for v in vals],
            "mimic_proj": [v[1] for v in vals],
            "mimic_cos": [v[2] for v in vals],
        }
    return expected


def careful_ce(logits):
    """CE(logits[i,:], i) without logsumexp's cancellation when p_ii -> 1: -log1p(-sum_{j!=i} p_ij) there.

    Only the reported loss uses it; the gradients come from autograd through F.cross_entropy as they would in
    training, and the suite keeps its batches far enough from p = I for those to keep float64's digits.
    """
    with torch.no_grad():
        p = logits.softmax(dim=1)
        off = p.masked_fill(torch.eye(p.shape[0], dtype=torch.bool), 0.0).sum(dim=1)
        naive = torch.logsumexp(logits, dim=1) - logits.diag()
        return torch.where(off < 0.5, -torch.log1p(-off), naive)


def make_case(name, gen, b, dv, dt, p, logit_scale, *, feature_scale=1.0, ref_step=0.1,
              duplicates=0, zero_direction=None, aligned=None):
    """Random heads and features; the options make the degenerate batches a real pool can produce."""
    rnd = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)
    h = feature_scale * rnd(b, dv)
    t = feature_scale * rnd(b, dt)
    wv = rnd(dv, p) / math.sqrt(dv)
    wt = rnd(dt, p) / math.sqrt(dt)
    if aligned is not None:
        # Text embeddings close to their image's: a nearly converged batch whose losses are tiny.
        if dv != dt:
            raise ValueError("aligned cases need Dv == Dt")
        wt = wv.clone()
        t = h + aligned * rnd(b, dt)
    for k in range(duplicates):
        # Sample k+1 repeats sample 0 exactly (the same pair twice in a batch).
        h[k + 1] = h[0]
        t[k + 1] = t[0]
    ref_v = wv + ref_step * rnd(dv, p) / math.sqrt(dv)
    ref_t = wt + ref_step * rnd(dt, p) / math.sqrt(dt)
    if zero_direction in ("visual", "both"):
        ref_v = wv.clone()
    if zero_direction in ("text", "both"):
        ref_t = wt.clone()
    inputs = {
        "image_features": h.tolist(), "text_features": t.tolist(),
        "visual_projection": wv.tolist(), "text_projection": wt.tolist(),
        "ref_visual_projection": ref_v.tolist(), "ref_text_projection": ref_t.tolist(),
    }
    case = {"name": name, "B": b, "Dv": dv, "Dt": dt, "P": p, "logit_scale": logit_scale, "inputs": inputs}
    case["expected"] = scores(case)
    return case


def default_suite(seed):
    gen = torch.Generator().manual_seed(seed)
    ln100 = math.log(100.0)
    return [
        make_case("b1", gen, 1, 5, 4, 3, 2.6593),
        make_case("b2", gen, 2, 6, 5, 4, 2.6593),
        make_case("b3_square", gen, 3, 4, 4, 4, 1.0),
        make_case("b5_p_gt_d", gen, 5, 3, 2, 7, 2.0),
        make_case("b12_ln100", gen, 12, 20, 16, 8, ln100),
        make_case("b9_scale0", gen, 9, 10, 8, 5, 0.0),
        make_case("b10_big_features", gen, 10, 12, 9, 6, 3.0, feature_scale=30.0),
        make_case("b8_duplicates", gen, 8, 10, 7, 5, ln100, duplicates=2),
        make_case("b7_zero_dir_visual", gen, 7, 8, 6, 4, 2.6593, zero_direction="visual"),
        make_case("b6_zero_dir_both", gen, 6, 8, 6, 4, 2.6593, zero_direction="both"),
        make_case("b16_converged", gen, 16, 12, 12, 12, math.log(30.0), aligned=0.01),
        make_case("b40_wide", gen, 40, 24, 20, 10, 3.5, ref_step=1.0),
    ]


def write_atomically(path, doc):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file to write (golden format)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--suite", default="default", choices=["default"])
    ap.add_argument("--recompute", metavar="FILE", help="recompute the expected values of FILE's cases instead")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.recompute:
        with open(args.recompute) as f:
            doc = json.load(f)
        for case in doc["cases"]:
            case["expected"] = scores(case)
    else:
        doc = {"spec": __doc__, "dtype": "float64", "seed": args.seed, "cases": default_suite(args.seed)}
    write_atomically(args.out, doc)
    print(f"wrote {len(doc['cases'])} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
