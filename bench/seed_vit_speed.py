"""How fast does the course's first ViT train on a CPU, next to the seed's own Keras model?

Both train the same 42,506-parameter model (see vitcourse/first_vit.py) on the same data — the real
Fashion-MNIST where it is on this machine (the first --samples training images, the 10,000 test
images; `python -m vitcourse.data status` says where it is), else random images with a line saying
so — with Adam and batches of 64. Each side also reports its test accuracy after the same epochs,
printed next to the speed ratio (on random images it is chance and means nothing). The PyTorch side
runs here; the Keras side runs ../shared/peers/seed_keras_vit.py in another interpreter (one with
TensorFlow, given by --keras-python), on an .npz of the same images. The PyTorch side is trained by
the course's own loop (vitcourse.training.fit) in the library's fastest setting for a CPU with
nothing else to do — torch's default thread count, bf16 mixed precision where the CPU has bf16
units (vitcourse.device.has_fast_bf16) — and,
for comparison, in plain float32 and on --cpu-threads (default 1). Like Keras's `fit`, each epoch
includes the pass over the validation images.

A shared machine's speed drifts by tens of per cent within minutes (seen here: the Keras side took
11.9 s/epoch in one run and 21.2 s in a run an hour later), so the two sides alternate for
--rounds rounds, Keras first in odd rounds and PyTorch first in even ones; each round gives one
ratio of Keras's seconds per epoch to PyTorch's, and the median of those ratios is the result.
The last line is `keras_over_torch=<ratio>` (or `keras_over_torch=skipped` when no Keras
interpreter was given or it has no TensorFlow).

    python bench/seed_vit_speed.py --keras-python /path/to/tf-venv/bin/python
    python bench/seed_vit_speed.py --samples 6000 --epochs 2      # a quick look, PyTorch only
    python bench/seed_vit_speed.py --keras-python ... --rounds 1  # one Keras run, one PyTorch run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vitcourse.device import has_fast_bf16
from vitcourse.first_vit import FirstViT, count_parameters
from vitcourse.training import fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PEER = ROOT.parent / "shared" / "peers" / "seed_keras_vit.py"


def real_images(samples: int) -> dict[str, np.ndarray] | None:
    """The first ``samples`` training images and every test image of the real Fashion-MNIST, or None."""
    from vitcourse.data import DataUnavailableError, load_fashion_mnist

    try:
        data = load_fashion_mnist(download=False, allow_synthetic=False)
    except DataUnavailableError:
        return None
    return {"x_train": data.x_train[:samples], "y_train": data.y_train[:samples],
            "x_test": data.x_test, "y_test": data.y_test}


def random_images(samples: int, seed: int = 0) -> dict[str, np.ndarray]:
    """uint8 (N, 28, 28) images and labels; the Keras peer cuts them into patches itself."""
    rng = np.random.default_rng(seed)
    n_test = max(samples // 6, 64)
    return {"x_train": rng.integers(0, 256, (samples, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, samples).astype(np.int64),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test).astype(np.int64)}


def torch_epoch_seconds(data: dict[str, np.ndarray], epochs: int, cpu_threads: int | None = None,
                        mixed_precision: bool | None = None, batch_size: int = 64) -> tuple[list[float], float]:
    """Seconds per epoch (training, then the validation pass) of the course's model and loop, and
    its test accuracy after the last epoch."""
    from vitcourse.patches import extract_patches

    def patches(images: np.ndarray) -> torch.Tensor:
        return extract_patches(torch.from_numpy(images).float() / 255.0, 4).contiguous()

    torch.manual_seed(0)
    history = fit(FirstViT(), patches(data["x_train"]), torch.from_numpy(data["y_train"]),
                  patches(data["x_test"]), torch.from_numpy(data["y_test"]), epochs=epochs,
                  batch_size=batch_size, lr=1e-3, device="cpu", seed=0, progress=False,
                  cpu_threads=cpu_threads, mixed_precision=mixed_precision)
    return history.seconds, history.val_acc[-1]


def keras_result(python: str, peer: Path, data: dict[str, np.ndarray], epochs: int) -> dict | None:
    check = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, text=True)
    if check.returncode != 0:
        print(f"Keras side skipped: {python} cannot import tensorflow "
              f"({check.stderr.strip().splitlines()[-1] if check.stderr.strip() else 'no message'}). "
              f"Create a separate venv with `pip install tensorflow-cpu` and pass its python.")
        return None
    with tempfile.TemporaryDirectory() as folder:
        npz = Path(folder) / "data.npz"
        np.savez(npz, **data)
        run = subprocess.run([python, str(peer), str(npz), str(epochs)], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        print("Keras side failed:\n" + run.stderr[-2000:])
        return None
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=4,
                        help="the first epoch is a warm-up; the median of the rest counts (the Keras peer takes "
                             "the upper middle of an even count, so an odd number of counted epochs is fairest)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Keras and PyTorch runs alternate this many times (Keras first, then PyTorch first, "
                             "...); each round gives one ratio and the median ratio is reported, so a machine "
                             "that speeds up or slows down during the run does not favour either side")
    parser.add_argument("--keras-python", help="a Python interpreter with TensorFlow, for the seed's Keras model")
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="a second thread count to time for comparison (the ratio uses torch's default)")
    parser.add_argument("--peer", type=Path, default=DEFAULT_PEER, help="path of seed_keras_vit.py")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is a warm-up")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.keras_python and not args.peer.exists():
        sys.exit(f"the Keras peer {args.peer} does not exist; pass --peer PATH")

    data = real_images(args.samples)
    what = "real Fashion-MNIST training images"
    if data is None:
        data, what = random_images(args.samples), "random images (the real Fashion-MNIST is not on this machine)"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu; "
          f"{len(data['y_train']):,} {what}, batch 64, {args.epochs} epochs per run; "
          f"model parameters: {count_parameters(FirstViT()):,}")
    if not args.keras_python:
        print("Keras side skipped: no --keras-python given.")

    # The library's setting for an idle CPU (torch's threads, bf16 where the CPU has it) sets the ratio.
    default_threads = torch.get_num_threads()
    bf16 = has_fast_bf16("cpu")
    precision = "bf16 mixed precision" if bf16 else "float32 (this CPU has no bf16 units)"
    chapter_label = f"{default_threads} threads, {precision} (the library's idle-CPU setting)"

    accuracies: dict[str, list[float]] = {"torch": [], "keras": []}

    def torch_run(label: str, **options) -> float:
        times, accuracy = torch_epoch_seconds(data, args.epochs, **options)
        median = statistics.median(times[1:])
        print(f"  torch (vitcourse.first_vit, {label}): {median:.2f} s/epoch (first epoch {times[0]:.2f} s), "
              f"test accuracy {accuracy:.3f}")
        accuracies["torch"].append(accuracy)
        return median

    def keras_run() -> float | None:
        keras = keras_result(args.keras_python, args.peer, data, args.epochs)
        if keras:
            print(f"  keras (seed model, TF {keras['tf']}): {keras['epoch_s_median_rest']:.2f} s/epoch "
                  f"(first epoch {keras['epoch_s_first']:.2f} s), test accuracy {keras['val_acc']:.3f}, "
                  f"count_params()={keras['params']:,}")
            accuracies["keras"].append(keras["val_acc"])
            return keras["epoch_s_median_rest"]
        return None

    ratios, torch_seconds, keras_seconds = [], [], []
    for round_ in range(args.rounds if args.keras_python else 1):
        print(f"round {round_ + 1}:")
        keras_first = round_ % 2 == 0
        keras_s = keras_run() if args.keras_python and keras_first else None
        torch_s = torch_run(chapter_label, mixed_precision=bf16)
        if args.keras_python and not keras_first:
            keras_s = keras_run()
        torch_seconds.append(torch_s)
        if keras_s is None:
            if args.keras_python:
                break                                  # keras_result said why
            continue
        keras_seconds.append(keras_s)
        ratios.append(keras_s / torch_s)
        print(f"  keras/torch this round: {ratios[-1]:.2f}")

    print("for comparison:")
    if bf16:
        torch_run(f"{default_threads} threads, float32", mixed_precision=False)
    if args.cpu_threads != default_threads:
        torch_run(f"{args.cpu_threads} thread(s), {precision}", cpu_threads=args.cpu_threads, mixed_precision=bf16)
    print(f"torch (the library's idle-CPU setting), median over rounds: {statistics.median(torch_seconds):.2f} s/epoch")
    if ratios:
        print(f"keras, median over rounds: {statistics.median(keras_seconds):.2f} s/epoch; "
              f"ratios per round: {', '.join(f'{r:.2f}' for r in ratios)}")
        print(f"keras_over_torch={statistics.median(ratios):.2f}")
    else:
        print("keras_over_torch=skipped")
    print(f"test accuracy after {args.epochs} epochs ({what}), median over runs: " + ", ".join(
        f"{side} {statistics.median(values):.3f}" for side, values in accuracies.items() if values))


if __name__ == "__main__":
    main()
