"""Read and write safetensors files with torch alone (the `safetensors` package is not a dependency).

Format: 8-byte little-endian header length N, N bytes of JSON header ({name: {dtype, shape, data_offsets}} plus an
optional "__metadata__" of strings), then the raw little-endian tensor bytes, offsets relative to the data start.
"""
from __future__ import annotations

import json
import struct
from typing import Dict, Optional, Tuple

import numpy as np
import torch

_TO_NP = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2', 'I8': 'i1',
          'U8': 'u1', 'BOOL': '?'}
_FROM_TORCH = {torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16',
               torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8',
               torch.bool: 'BOOL'}


def save(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    header: dict = {}
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dtype = _FROM_TORCH[t.dtype]
        raw = (t.view(torch.int16).numpy().astype('<i2').tobytes() if dtype == 'BF16'
               else t.numpy().astype(_TO_NP[dtype]).tobytes())
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    # The spec allows trailing spaces; padding to 8 bytes keeps the data aligned for zero-copy readers.
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f'{path}: not a safetensors file (shorter than its 8-byte header length)')
    (n,) = struct.unpack('<Q', data[:8])
    if 8 + n > len(data):
        raise ValueError(f'{path}: header length {n} runs past the end of the file')
    header = json.loads(data[8:8 + n].decode('utf-8'))
    metadata = header.pop('__metadata__', {}) or {}
    base = 8 + n
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        start, end = info['data_offsets']
        if base + end > len(data) or start > end:
            raise ValueError(f'{path}: tensor {name} has offsets outside the file')
        raw = data[base + start:base + end]
        dtype = info['dtype']
        if dtype == 'BF16':
            arr = np.frombuffer(raw, dtype='<i2').copy()
            t = torch.from_numpy(arr).view(torch.bfloat16)
        elif dtype in _TO_NP:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_TO_NP[dtype]).copy())
        else:
            raise ValueError(f'{path}: tensor {name} has unsupported dtype {dtype}')
        out[name] = t.reshape(info['shape'])
    return out, metadata
