"""Time and peak memory of one attention layer, global against windowed, as the image grows.

The measurement of chapter 9 (``vitcourse.swin.attention_scaling``) from the command line, for
sizes and devices the chapter does not build with: Swin-T's first-stage layer (C = 96, 3 heads,
windows of 7) on square maps of side 7, 14, …; each layer through the explicit softmax path
(weights materialised) and the fused ``scaled_dot_product_attention`` path.

    python bench/window_attention_scaling.py                              # CPU, sides 7 … 56
    python bench/window_attention_scaling.py --device cuda --max-side 112 --json out.json

Time: the fastest of several timed loops of forward passes without autograd (one CPU thread by
default). Memory: the peak total size of the tensors the pass creates (``peak_tensor_bytes``),
and on CUDA also ``torch.cuda.max_memory_allocated`` above what was allocated before the pass.
"""

from __future__ import annotations

import argparse
import json

import torch

from vitcourse.swin import WindowAttention, attention_scaling, window_partition
from vitcourse.vit import Attention


@torch.no_grad()
def cuda_peaks(sides, dim: int, heads: int, window: int) -> dict:
    """CUDA allocator peaks (bytes above the inputs) per (side, attention, path)."""
    layers = {"global": Attention(dim, heads).cuda().eval(), "window": WindowAttention(dim, window, heads).cuda().eval()}
    peaks = {}
    for side in sides:
        x = torch.randn(1, side, side, dim, device="cuda")
        for kind, layer in layers.items():
            for path, weights in (("explicit", True), ("fused", False)):
                tokens = x.flatten(1, 2) if kind == "global" else window_partition(x, window).flatten(1, 2)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                layer(tokens, return_weights=weights)
                torch.cuda.synchronize()
                peaks[(side, kind, path)] = torch.cuda.max_memory_allocated() - base
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-side", type=int, default=56, help="largest map side in tokens (a multiple of --window)")
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads while timing (0: leave as is)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    sides = list(range(args.window, args.max_side + 1, args.window))
    table = attention_scaling(sides, args.dim, args.heads, args.window, device=args.device,
                              threads=args.threads or None)
    if torch.device(args.device).type == "cuda":
        peaks = cuda_peaks(sides, args.dim, args.heads, args.window)
        table["cuda_peak_bytes"] = [peaks[(r.side, r.attention, r.path)] for r in table.itertuples()]
    table["ms"] = table["seconds"] * 1e3
    table["MB"] = table["peak_bytes"] / 1e6
    print(table.pivot(index="tokens", columns=["attention", "path"], values=["ms", "MB"]).round(2).to_string())
    if args.json:
        device_name = torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else "cpu"
        with open(args.json, "w") as handle:
            json.dump({"device": device_name, "torch": torch.__version__, "args": vars(args),
                       "rows": table.to_dict(orient="records")}, handle, indent=2)


if __name__ == "__main__":
    main()
