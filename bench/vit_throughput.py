"""Images per second of the CIFAR ViT, training and evaluation, on the CPU and (when present) a CUDA GPU.

The training step is the recipe's own (``vitcourse.engine.Trainer.train_step``: GPU-side
augmentation, bf16 autocast on CUDA, ``torch.compile`` where it works, fused AdamW), fed random
CIFAR-shaped uint8 images. From images/s and the closed-form FLOPs per image
(``vitcourse.costs``: training = 3 × forward) it prints the achieved TFLOP/s and, where the
device's dense bf16 peak is known (or given with --peak-tflops), the fraction of it.

    python bench/vit_throughput.py                          # CPU, and CUDA if there is one
    python bench/vit_throughput.py --device cuda --batch-size 1024 --json out.json
    python bench/vit_throughput.py --device cpu --peak-tflops 1.2

The issue's target, stated until measured: ≥ 40,000 training images/s on an H200-class GPU.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vitcourse.augment import to_unit_float
from vitcourse.cifar import CIFAR_VIT, QUICK_VIT, CifarTrainer, Dist, full_vit_recipe, normalize, random_cifar_like
from vitcourse.costs import forward_flops, param_count, training_flops

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s. Matched by
# substring of torch.cuda.get_device_name(), first match wins (so "H100 PCIe" before "H100").
BF16_PEAK_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),        # SXM ("H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
MODELS = {"cifar": CIFAR_VIT, "quick": QUICK_VIT}


def bf16_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named ``device_name``, or None when it is not in the table."""
    for key, peak in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(device: torch.device, model_name: str, batch_size: int, steps: int, warmup: int,
            compile_model: bool | None) -> dict:
    """Time ``steps`` training steps and ``steps`` evaluation batches after ``warmup`` of each."""
    config = MODELS[model_name]
    n_images = batch_size * 4
    recipe = full_vit_recipe(model=config, batch_size=batch_size, epochs=1000, warmup_epochs=1.0,
                         compile=compile_model, train_subset=n_images, test_subset=batch_size)
    trainer = CifarTrainer(recipe, *random_cifar_like(n_images, batch_size), dist_info=Dist(device=device))
    batches = [torch.arange(i * batch_size, (i + 1) * batch_size, device=device) for i in range(4)]

    def train(n):
        for i in range(n):
            trainer.train_step(trainer.x_train[batches[i % 4]], trainer.y_train[batches[i % 4]])

    start = time.perf_counter()
    train(warmup)                            # includes compilation
    _sync(device)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    train(steps)
    _sync(device)
    train_ips = steps * batch_size / (time.perf_counter() - start)

    images = normalize(to_unit_float(trainer.x_test))
    network = trainer.network
    network.eval()
    with torch.inference_mode(), trainer.autocast():
        for _ in range(warmup):
            network(images)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            network(images)
        _sync(device)
        eval_ips = steps * batch_size / (time.perf_counter() - start)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "model": model_name, "params": param_count(config), "batch_size": batch_size,
            "compiled": trainer.use_compile, "bf16": trainer.amp_dtype is not None,
            "warmup_seconds": warmup_seconds, "train_images_per_s": train_ips, "eval_images_per_s": eval_ips,
            "train_tflops": train_ips * training_flops(config) / 1e12,
            "eval_tflops": eval_ips * forward_flops(config) / 1e12}


def report(result: dict, peak: float | None) -> str:
    lines = [f"{result['device']}: model={result['model']} ({result['params']:,} params), batch {result['batch_size']}, "
             f"compiled={result['compiled']}, bf16={result['bf16']}, warm-up {result['warmup_seconds']:.1f} s",
             f"  training:   {result['train_images_per_s']:>10,.0f} images/s  {result['train_tflops']:8.2f} TFLOP/s",
             f"  evaluation: {result['eval_images_per_s']:>10,.0f} images/s  {result['eval_tflops']:8.2f} TFLOP/s"]
    if peak:
        lines.append(f"  fraction of the {peak:g} TFLOP/s dense bf16 peak: training {result['train_tflops'] / peak:.1%}, "
                     f"evaluation {result['eval_tflops'] / peak:.1%}")
    else:
        lines.append("  peak unknown (pass --peak-tflops to get the fraction)")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument("--model", choices=sorted(MODELS), default="cifar")
    parser.add_argument("--batch-size", type=int, help="default: the full recipe's (1,024) on CUDA, 64 on the CPU")
    parser.add_argument("--steps", type=int, help="timed steps (default: 50 on CUDA, 3 on the CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: 10 on CUDA, 1 on the CPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile (default: on CUDA only)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, where the table does not know it")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    devices = {"all": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"], "cuda": ["cuda"]}[args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        parser.error("--device cuda, but no CUDA GPU is visible")
    results = []
    for kind in devices:
        device = torch.device(kind)
        on_gpu = kind == "cuda"
        result = measure(device, args.model, args.batch_size or (full_vit_recipe().batch_size if on_gpu else 64),
                         args.steps or (50 if on_gpu else 3), args.warmup or (10 if on_gpu else 1), args.compile)
        peak = args.peak_tflops or (bf16_peak_tflops(result["device"]) if on_gpu else None)
        result["peak_tflops"] = peak
        print(report(result, peak), flush=True)
        results.append(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "results": results}, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
