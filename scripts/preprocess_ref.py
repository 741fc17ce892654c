#!/usr/bin/env python3
"""Reference CLIP image preprocessing with PIL + torch, as torchvision/OpenCLIP do it (torchvision is not
installed here, so its steps are spelled out): Image.open(f).convert('RGB') (webdataset's "pilrgb" decode),
Resize(S, BICUBIC) with torchvision's size rule, CenterCrop(S) with its rounding, ToTensor, Normalize.

Usage: preprocess_ref.py --size 224 [--mean m m m --std s s s] [--resize shortest|squash]
                         [--order convert-first|clip] [--uint8] --out DIR IMAGE...
Writes DIR/<i>.bin (float32 CHW little-endian normalised, or with --uint8 the S×S×3 uint8 pixels before
ToTensor) for the i-th image, and prints one JSON line per image: {index, mode, width, height, resized, crop}.

--order clip resizes in the file's own mode and converts afterwards, as OpenAI's `_transform` does on an
image opened without webdataset's conversion: palette images then resize with NEAREST (PIL forces it) and
RGBA images resize premultiplied.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resized_size(w, h, size, mode):
    if mode == 'squash':
        return size, size
    # torchvision's _compute_resized_output_size: the longer side is truncated with int().
    if w <= h:
        return size, int(size * h / w)
    return int(size * w / h), size


def center_crop(img, size):
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size)), (left, top)


def preprocess(path, args):
    img = Image.open(path)
    mode = img.mode
    if args.order == 'convert-first':
        img = img.convert('RGB')
    w, h = img.size
    nw, nh = resized_size(w, h, args.size, args.resize)
    img = img.resize((nw, nh), Image.BICUBIC)
    img, crop = center_crop(img, args.size)
    img = img.convert('RGB')
    pixels = np.array(img, np.uint8, copy=True)
    info = {'mode': mode, 'width': w, 'height': h, 'resized': [nw, nh], 'crop': list(crop)}
    if args.uint8:
        return pixels.tobytes(), info
    t = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().float().div(255)
    mean = torch.as_tensor(args.mean, dtype=torch.float32)[:, None, None]
    std = torch.as_tensor(args.std, dtype=torch.float32)[:, None, None]
    t = t.sub_(mean).div_(std)
    return t.numpy().astype('<f4').tobytes(), info


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--size', type=int, required=True)
    p.add_argument('--mean', type=float, nargs=3, default=CLIP_MEAN)
    p.add_argument('--std', type=float, nargs=3, default=CLIP_STD)
    p.add_argument('--resize', choices=['shortest', 'squash'], default='shortest')
    p.add_argument('--order', choices=['convert-first', 'clip'], default='convert-first')
    p.add_argument('--uint8', action='store_true')
    p.add_argument('--out', required=True)
    p.add_argument('images', nargs='+')
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for i, path in enumerate(args.images):
        try:
            data, info = preprocess(path, args)
        except Exception as e:  # one bad image is reported, the rest still run
            print(json.dumps({'index': i, 'error': f'{type(e).__name__}: {e}'}), flush=True)
            continue
        with open(os.path.join(args.out, f'{i}.bin'), 'wb') as f:
            f.write(data)
        print(json.dumps({'index': i, **info}), flush=True)


if __name__ == '__main__':
    sys.exit(main())
