"""Reference trajectories of torch.optim for the optimizer tests (run once with PyTorch; the
output, optim_reference.safetensors, is committed). Each case: a parameter p0 [5, 7], gradients
g1..g4 (fixed random numbers), and the parameter after each of the 4 steps."""
import json
import struct
import sys

import torch

torch.manual_seed(0)
cases = {
    "adam": (torch.optim.Adam, dict(lr=1e-3)),
    "adam_wd": (torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    "adamw": (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.05)),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    "sgd_plain": (torch.optim.SGD, dict(lr=0.3)),
}
tensors = {}
p0 = torch.randn(5, 7)
grads = [torch.randn(5, 7) * (10 ** k) for k in (-1, 0, 1, -2)]
tensors["p0"] = p0
for i, g in enumerate(grads):
    tensors[f"g{i + 1}"] = g
for name, (cls, kwargs) in cases.items():
    p = torch.nn.Parameter(p0.clone())
    opt = cls([p], **kwargs)
    for i, g in enumerate(grads):
        p.grad = g.clone()
        opt.step()
        tensors[f"{name}.p{i + 1}"] = p.detach().clone()

header, blobs, offset = {}, [], 0
for key in sorted(tensors):
    data = tensors[key].contiguous().numpy().astype("<f4").tobytes()
    header[key] = {"dtype": "F32", "shape": list(tensors[key].shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
header["__metadata__"] = {"torch": torch.__version__, "cases": json.dumps({k: v[1] for k, v in cases.items()})}
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(sys.argv[1] if len(sys.argv) > 1 else "optim_reference.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for b in blobs:
        f.write(b)
