#!/usr/bin/env python3
"""Export PyTorch weights to safetensors for `viscoin convert` (optional helper for users who have PyTorch).

The Swift side never unpickles anything: run this script where PyTorch is installed, on files
you trust (unpickling executes code), then convert the result with `viscoin convert`.

Inputs understood:
  * a state dict saved with torch.save (.pt/.pth), loaded with weights_only=True;
  * VisCoIN's save_viscoin checkpoint {classifier, concept_extractor, explainer, gan} (keys are
    written with those prefixes, e.g. "gan.synthesis.b4.const");
  * a pickled whole module, or an NVIDIA stylegan2-ada network pickle {G, D, G_ema, ...}
    (needs --trust-pickle; the stylegan2-ada-pytorch repository must be on PYTHONPATH so that
    its classes can be unpickled). Modules are written as "<name>.<state-dict key>".

Examples:
  python tools/export_safetensors.py network-snapshot-001000.pkl gan.safetensors --trust-pickle
  viscoin convert --input gan.safetensors --prefix G_ema. --model generator --cfg auto --output G.safetensors
  python tools/export_safetensors.py resnet50-0676ba61.pth resnet50.safetensors
  viscoin convert --input resnet50.safetensors --names torchvision --model classifier --classes 1000 --output f.safetensors

The writer is pure Python (struct + json): no safetensors package is needed.
"""
import argparse
import json
import struct
import sys

DTYPES = {
    "torch.float32": ("F32", 4), "torch.float16": ("F16", 2), "torch.bfloat16": ("BF16", 2),
    "torch.float64": ("F64", 8), "torch.int64": ("I64", 8), "torch.int32": ("I32", 4), "torch.uint8": ("U8", 1),
}


def flatten(obj, prefix=""):
    """Yields (name, tensor) for state dicts, modules and nested dicts of them."""
    import torch
    if isinstance(obj, torch.Tensor):
        yield prefix.rstrip("."), obj
    elif isinstance(obj, torch.nn.Module):
        for k, v in obj.state_dict().items():
            yield prefix + k, v
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (torch.Tensor, torch.nn.Module, dict)):
                yield from flatten(v, prefix + str(k) + ".")


def tensor_entry(t):
    """(dtype name, shape, little-endian bytes) of a torch tensor."""
    import torch
    t = t.detach().cpu().contiguous()
    dtype, _ = DTYPES.get(str(t.dtype), (None, None))
    if dtype is None:
        t, dtype = t.float(), "F32"
    if dtype == "BF16":
        return dtype, list(t.shape), t.view(torch.int16).numpy().tobytes()
    return dtype, list(t.shape), t.numpy().tobytes()


def write_safetensors(path, entries, metadata):
    """entries: (name, dtype name, shape, bytes)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--key", help="only export this entry of a dict checkpoint (e.g. G_ema)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow full unpickling (executes code from the file!)")
    args = parser.parse_args()
    import torch
    try:
        obj = torch.load(args.input, map_location="cpu", weights_only=True)
    except Exception as error:
        if not args.trust_pickle:
            sys.exit(f"{args.input}: not a plain state dict ({error}); pass --trust-pickle for module pickles you trust")
        try:
            obj = torch.load(args.input, map_location="cpu", weights_only=False)
        except Exception:
            import pickle
            with open(args.input, "rb") as f:
                obj = pickle.load(f)
    if args.key:
        obj = obj[args.key]
    tensors = list(flatten(obj))
    if not tensors:
        sys.exit(f"{args.input}: no tensors found")
    entries = [(name,) + tensor_entry(t) for name, t in tensors]
    write_safetensors(args.output, entries, {"source": args.input.split("/")[-1], "exporter": "viscoin tools/export_safetensors.py"})
    print(f"wrote {len(tensors)} tensors to {args.output}")


if __name__ == "__main__":
    main()
