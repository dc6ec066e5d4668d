import random

import numpy as np
import pytest
import torch

from vitcourse.device import get_device, has_fast_bf16, seed_everything
from vitcourse.profile import Profile, get_profile, run_label


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("VITCOURSE_PROFILE", "full")
    assert get_profile() == Profile("full", "set by VITCOURSE_PROFILE")
    monkeypatch.setenv("VITCOURSE_PROFILE", " Quick ")
    assert get_profile().quick


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("VITCOURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "full"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "quick"


def test_bad_profile_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("VITCOURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"VITCOURSE_PROFILE='fast'.*quick, full"):
        get_profile()


def test_pick_chooses_by_profile():
    assert Profile("quick", "").pick(quick=1, full=2) == 1
    assert Profile("full", "").pick(quick=1, full=2) == 2


def test_run_label_names_profile_device_and_data():
    assert run_label("synthetic-fashion", "cpu", Profile("quick", "x")) == \
        "profile=quick · device=cpu · data=synthetic-fashion"


def test_device_prefers_cuda_then_cpu(monkeypatch):
    monkeypatch.delenv("VITCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_asking_for_a_missing_device_says_what_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"'cuda' was asked for.*available: .*cpu"):
        get_device("cuda")


def test_seed_everything_repeats_all_three_generators():
    def draw():
        seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert draw() == draw()
    seed_everything(124)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) != draw()


def test_seed_everything_returns_a_seeded_generator():
    a = torch.rand(3, generator=seed_everything(5))
    b = torch.rand(3, generator=seed_everything(5))
    assert torch.equal(a, b)


def test_deterministic_mode_is_switched_on_and_off():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    seed_everything(0)
    assert not torch.are_deterministic_algorithms_enabled()


def test_seed_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)


def test_cpu_threads_sets_and_restores_the_thread_count():
    from vitcourse.device import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(1):   # restored after an error too
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with cpu_threads(None):
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2"])
def test_cpu_threads_rejects_a_bad_count(bad):
    from vitcourse.device import cpu_threads

    with pytest.raises(ValueError, match="cpu_threads must be a positive int"), cpu_threads(bad):
        pass


def test_fit_trains_on_the_given_threads_and_restores_them():
    from vitcourse.training import fit

    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 2)

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return self.layer(x)

    before = torch.get_num_threads()
    fit(Probe(), torch.rand(8, 3), torch.tensor([0, 1] * 4), epochs=1, batch_size=4, device="cpu",
        seed=0, progress=False, cpu_threads=1)
    assert seen == [1, 1] and torch.get_num_threads() == before


@pytest.mark.parametrize("avx512_bf16, amx, expected",
                         [(False, False, False), (True, False, True), (False, True, True)])
def test_cpu_bf16_follows_the_instruction_set_probes(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert has_fast_bf16("cpu") is expected


def test_fast_bf16_is_false_for_devices_that_emulate_it(monkeypatch):
    assert has_fast_bf16("meta") is False
    assert has_fast_bf16("mps") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert has_fast_bf16("cuda") is False


def test_keep_freed_memory_sets_glibc_thresholds_once(monkeypatch):
    import vitcourse.device as device

    calls = []

    class FakeGlibc:
        def gnu_get_libc_version(self):
            return b"2.36"

        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    device.keep_freed_memory.cache_clear()
    monkeypatch.setattr(device.ctypes.util, "find_library", lambda name: "libc.so.6")
    monkeypatch.setattr(device.ctypes, "CDLL", lambda name: FakeGlibc())
    assert device.keep_freed_memory() is True
    assert device.keep_freed_memory() is True                       # once per process
    assert calls == [(-3, 32 * 2**20), (-1, 128 * 2**20)]           # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    device.keep_freed_memory.cache_clear()                          # the real libc for later callers


def test_keep_freed_memory_does_nothing_without_glibc(monkeypatch):
    import vitcourse.device as device

    class OtherLibc:                                                 # e.g. musl: no gnu_get_libc_version
        def mallopt(self, param, value):
            raise AssertionError("mallopt must not be called on a libc that is not glibc")

    device.keep_freed_memory.cache_clear()
    monkeypatch.setattr(device.ctypes.util, "find_library", lambda name: "libc.so")
    monkeypatch.setattr(device.ctypes, "CDLL", lambda name: OtherLibc())
    assert device.keep_freed_memory() is False
    device.keep_freed_memory.cache_clear()


FAULTS_PROBE = """
import resource, sys, torch
import vitcourse.training as training
from vitcourse.first_vit import FirstViT
if sys.argv[1] == "off":
    training.keep_freed_memory = lambda: False
torch.manual_seed(0)
x, y = torch.rand(6400, 49, 16), torch.randint(0, 10, (6400,))
xv, yv = torch.rand(2000, 49, 16), torch.randint(0, 10, (2000,))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
training.fit(FirstViT(), x, y, xv, yv, epochs=3, device="cpu", seed=0, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_fit_on_cpu_takes_far_fewer_page_faults_with_freed_memory_kept(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "faults.py"
    script.write_text(FAULTS_PROBE)
    faults = {mode: int(subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True,
                                       check=True).stdout.split()[-1]) for mode in ("on", "off")}
    # Measured here: about 34,000 with it and 215,000 without.
    assert faults["on"] * 3 < faults["off"], faults


def test_run_words_say_the_run_label_as_prose():
    from vitcourse.profile import Profile, run_label, run_words

    quick = Profile("quick", "test")
    assert run_label("synthetic-cifar-clutter", "cpu", quick) == \
        "profile=quick · device=cpu · data=synthetic-cifar-clutter"
    assert run_words("synthetic-cifar-clutter", "cpu", quick) == \
        "quick profile, on the CPU, on the synthetic-cifar-clutter stand-in"
    assert run_words("fashion-mnist", "cpu", quick) == "quick profile, on the CPU, on the real Fashion-MNIST"
    assert run_words("cifar10", "cuda", Profile("full", "test")) == \
        "full profile, on a CUDA GPU, on the real CIFAR-10"
    from vitcourse.data.loaders import REAL_OF
    from vitcourse.profile import STANDIN_PREFIX, device_words
    assert all(name.startswith(STANDIN_PREFIX) for name in REAL_OF)  # run_words tells them apart so
    assert not any(name.startswith(STANDIN_PREFIX) for name in REAL_OF.values())
    assert device_words("cpu") == "on the CPU" and device_words(torch.device("cuda", 0)) == "on a CUDA GPU"
