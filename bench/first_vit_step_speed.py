"""Milliseconds per training step of chapter 5's first ViT on this CPU: precision and threads.

What is compared: one training step of ``vitcourse.first_vit.FirstViT`` (42,506 parameters) on a
batch of 64 random (49, 16) patch sequences — forward, cross-entropy, backward and one
``vitcourse.training.FlatAdam`` update, the same operations as ``vitcourse.training.fit``'s inner
loop — in float32 and under bf16 mixed precision (bf16 autocast, a bf16 working copy of the
weights, float32 master weights), each with torch's default thread count and with one thread.

How: for each setting, ``--warmup`` untimed steps first (the first steps pay for allocations and
kernel selection and say nothing about the steady state), then ``--steps`` steps each timed on
its own; the result is the median step. The settings take turns for ``--rounds`` rounds (so a
machine that speeds up or slows down during the run does not favour one of them), and the
median over all timed steps of a setting is reported. bf16 is timed whether or not the CPU has
bf16 units (``vitcourse.device.has_fast_bf16`` is recorded with the results): where it has none,
bf16 arithmetic is emulated and the measurement shows what that costs.

    python bench/first_vit_step_speed.py                         # prints a table
    python bench/first_vit_step_speed.py --json bench/results/first_vit_step_speed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date

import torch
import torch.nn.functional as F

from vitcourse.device import cpu_threads, has_fast_bf16
from vitcourse.first_vit import FirstViT, count_parameters
from vitcourse.training import FlatAdam


def step_times(threads: int, bf16: bool, steps: int, warmup: int, batch_size: int = 64,
               seed: int = 0) -> list[float]:
    """Seconds of each of ``steps`` training steps after ``warmup`` untimed ones."""
    torch.manual_seed(seed)
    model = FirstViT()
    optimizer = FlatAdam(model, lr=1e-3, working_dtype=torch.bfloat16 if bf16 else None)
    inputs = torch.rand(batch_size, 49, 16)
    labels = torch.randint(0, 10, (batch_size,))
    times = []
    with cpu_threads(threads):
        for step in range(warmup + steps):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step >= warmup:
                times.append(time.perf_counter() - start)
    optimizer.finish()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per setting and round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first, per setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--note", help="what else was running on the machine, recorded with the results")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    settings = [(threads, bf16) for threads in dict.fromkeys([default_threads, 1]) for bf16 in (False, True)]
    timed: dict[tuple[int, bool], list[float]] = {setting: [] for setting in settings}
    for round_ in range(args.rounds):
        order = settings if round_ % 2 == 0 else settings[::-1]
        for threads, bf16 in order:
            timed[(threads, bf16)] += step_times(threads, bf16, args.steps, args.warmup)
    rows = [{"threads": threads, "bf16 mixed precision": bf16,
             "median ms per step": 1000 * statistics.median(timed[(threads, bf16)]),
             "timed steps": len(timed[(threads, bf16)])}
            for threads, bf16 in settings]
    result = {
        "recorded": f"{date.today().isoformat()}, {platform.processor() or platform.machine()}, "
                    f"torch {torch.__version__}",
        "command": "python bench/first_vit_step_speed.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k not in ("json", "note") and v is not None),
        "model_parameters": count_parameters(FirstViT()),
        "batch_size": 64,
        "cpu_has_fast_bf16": has_fast_bf16("cpu"),
        "default_threads": default_threads,
        "results": rows,
    }
    if args.note:
        result["note"] = args.note
    print(f"{result['recorded']}; bf16 units: {result['cpu_has_fast_bf16']}; "
          f"{args.warmup} warm-up + {args.steps} timed steps × {args.rounds} rounds per setting")
    for row in rows:
        print(f"  {row['threads']} thread(s), {'bf16' if row['bf16 mixed precision'] else 'float32'}: "
              f"{row['median ms per step']:.2f} ms per step (median of {row['timed steps']})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")


if __name__ == "__main__":
    main()
