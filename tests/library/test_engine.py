"""The training engine (vitcourse.engine): resume, the compile fallback, each task's hooks, the library's layering."""

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import vitcourse
from vitcourse.cifar import CifarTrainer, Recipe, random_cifar_like
from vitcourse.deit import CifarCNN, DistillationTrainer
from vitcourse.dino import DINOTrainer, quick_dino_recipe
from vitcourse.engine import Dist, Task, Trainer
from vitcourse.vit import ViTConfig

from tests.support.import_graph import find_cycle, import_graph, module_name, runtime_imports

ROOT = Path(__file__).resolve().parents[2]
CPU = Dist(device=torch.device("cpu"))
TINY = ViTConfig(image_size=32, patch_size=8, dim=32, depth=2, heads=2, dropout=0.1, drop_path=0.2)
TINY_DINO = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=2, drop_path=0.1)
TIMES = ["seconds", "images_per_s"]          # the clock's columns: never equal between two runs


def vit_trainer(**changes) -> CifarTrainer:
    recipe = replace(Recipe(model=TINY, epochs=2, batch_size=16, warmup_epochs=0.5, mixup_alpha=0.8,
                            cutmix_alpha=1.0, mix_prob=1.0, seed=3), **changes)
    return CifarTrainer(recipe, *random_cifar_like(64, 40, seed=1), dist_info=CPU)


def dino_trainer(**changes) -> DINOTrainer:
    settings = dict(model=TINY_DINO, global_size=16, local_size=8, n_local=2, out_dim=16, hidden_dim=32,
                    bottleneck_dim=8, epochs=2, batch_size=8, train_subset=None, warmup_epochs=0.5,
                    freeze_last_layer_epochs=0.5, teacher_temp_warmup_epochs=1.0)
    recipe = quick_dino_recipe(**{**settings, **changes})
    images = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    return DINOTrainer(recipe, images, device="cpu")


def distillation_trainer() -> DistillationTrainer:
    recipe = Recipe(model=TINY, epochs=2, batch_size=16, warmup_epochs=0.0, seed=3)
    torch.manual_seed(0)
    return DistillationTrainer(recipe, CifarCNN((4, 8)), *random_cifar_like(64, 40, seed=1), mode="soft",
                               tau=2.0, dist_info=CPU)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


# -- resume ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("stop", [4, 5])          # at an epoch's end, and one step into the next
def test_resume_gives_the_history_and_weights_of_an_uninterrupted_run(tmp_path, stop):
    whole = vit_trainer()
    whole.fit(progress=False)
    first = vit_trainer()
    first.fit(until_step=stop, progress=False)
    first.save(tmp_path / "vit.pt")
    resumed = vit_trainer(compile=False)          # how it runs may change; what it trains may not
    resumed.load(tmp_path / "vit.pt")
    resumed.fit(progress=False)
    assert resumed.step == whole.step == 8
    assert resumed.history().drop(columns=TIMES).equals(whole.history().drop(columns=TIMES))
    assert_same_weights(resumed.model, whole.model)


@pytest.mark.parametrize("stop", [4, 5])          # at an epoch's end, and one step into the next
def test_fit_leaves_a_checkpoint_at_the_step_it_stops(tmp_path, stop):
    first = vit_trainer()
    first.fit(until_step=stop, progress=False, checkpoint=tmp_path / "vit.pt")
    resumed = vit_trainer()
    resumed.load(tmp_path / "vit.pt")
    assert resumed.step == stop
    assert_same_weights(resumed.model, first.model)


def test_dino_resumes_mid_epoch_to_the_uninterrupted_run(tmp_path):
    whole = dino_trainer()
    whole.fit(progress=False)
    first = dino_trainer()
    first.fit(until_step=6, progress=False)          # one epoch (4 steps) and two steps into the next
    first.save(tmp_path / "dino.pt")
    resumed = dino_trainer()
    resumed.load(tmp_path / "dino.pt")
    assert resumed.step == 6 and len(resumed.steps()) == 6
    resumed.fit(progress=False)
    assert resumed.history().drop(columns=TIMES).equals(whole.history().drop(columns=TIMES))
    assert resumed.steps().equals(whole.steps())
    assert_same_weights(resumed.student, whole.student)
    assert_same_weights(resumed.teacher, whole.teacher)
    assert torch.equal(resumed.task.criterion.center, whole.task.criterion.center)


def test_dino_refuses_a_checkpoint_of_another_recipe(tmp_path):
    trainer = dino_trainer()
    trainer.save(tmp_path / "dino.pt")
    with pytest.raises(ValueError, match=r"different recipe: n_local: checkpoint 2, now 3"):
        dino_trainer(n_local=3).load(tmp_path / "dino.pt")


def test_a_checkpoint_from_before_the_engine_is_refused_clearly(tmp_path):
    trainer = vit_trainer()
    state = trainer.state_dict()
    del state["task"]
    with pytest.raises(ValueError, match="written before the training engine .* start a new run"):
        trainer.load_state_dict(state)


# -- compile falls back to eager -------------------------------------------------------------------

class BrokenCompile(torch.nn.Module):
    """What torch.compile returns where its backend fails: the module, unusable."""

    def __init__(self, inner):
        super().__init__()
        self._orig_mod = inner

    def forward(self, *args):
        raise RuntimeError("backend compiler failed")


def test_dino_falls_back_to_eager_for_student_and_teacher_with_the_numbers_of_an_eager_run(monkeypatch):
    eager = dino_trainer(compile=False)
    eager_loss, eager_entropy = eager.train_step(eager.x_train[:8])
    monkeypatch.setattr(torch, "compile", BrokenCompile)
    trainer = dino_trainer(compile=True)
    assert isinstance(trainer.network, BrokenCompile) and isinstance(trainer.companions["teacher"], BrokenCompile)
    with pytest.warns(UserWarning, match="torch.compile failed here .*training eagerly"):
        loss, entropy = trainer.train_step(trainer.x_train[:8])
    assert trainer.use_compile is False
    assert trainer.network is trainer.student and trainer.companions["teacher"] is trainer.teacher
    # The retry reused the prepared views and changed the centre once: the eager run's numbers exactly.
    assert loss.item() == eager_loss.item() and entropy.item() == eager_entropy.item()
    assert torch.equal(trainer.task.criterion.center, eager.task.criterion.center)
    assert_same_weights(trainer.student, eager.student)


def test_a_real_bug_surfaces_from_the_eager_retry(monkeypatch):
    monkeypatch.setattr(torch, "compile", BrokenCompile)
    trainer = vit_trainer(compile=True)

    def buggy_loss(trainer, images, targets):
        raise KeyError("a bug in the task")

    trainer.task.loss = buggy_loss
    with pytest.warns(UserWarning, match="training eagerly"), pytest.raises(KeyError, match="a bug in the task"):
        trainer.train_step(trainer.x_train[:16], trainer.y_train[:16])
    assert trainer.step == 0


# -- each task's hooks, in order -------------------------------------------------------------------

HOOKS = ("prepare", "before_step", "loss", "before_update", "after_step", "epoch_row")


def record_hooks(task: Task, calls: list) -> None:
    """Wrap the task's hooks so that each call appends (hook, trainer step) to ``calls``."""
    for name in HOOKS:
        original = getattr(task, name)

        def recorded(trainer, *args, _name=name, _original=original):
            calls.append((_name, trainer.step))
            return _original(trainer, *args)

        setattr(task, name, recorded)


@pytest.mark.parametrize("make", [vit_trainer, distillation_trainer, dino_trainer],
                         ids=["classification", "distillation", "dino"])
def test_each_task_sees_its_hooks_in_order(make):
    trainer = make()
    calls = []
    record_hooks(trainer.task, calls)
    trainer.fit(until_step=trainer.steps_per_epoch + 1, progress=False)
    per_step = ["prepare", "before_step", "loss", "before_update", "after_step"]
    expected = [(hook, step) for step in range(trainer.steps_per_epoch) for hook in per_step]
    expected += [("epoch_row", trainer.steps_per_epoch)]
    expected += [(hook, trainer.steps_per_epoch) for hook in per_step]
    assert calls == expected


def test_dino_hooks_do_what_the_paper_says_at_the_step_they_run():
    trainer = dino_trainer(teacher_temp=0.07)             # warm-up over the first epoch, 4 steps
    decayed = trainer.optimizer.param_groups[0]
    last_layer = trainer.student.head.last_layer.weight.clone()
    trainer.train_step(trainer.x_train[:8])                # step 0 < freeze_steps = 2: the last layer stays
    assert torch.equal(trainer.student.head.last_layer.weight, last_layer)
    assert decayed["weight_decay"] == pytest.approx(trainer.recipe.weight_decay)          # the cosine's start
    assert trainer.task.teacher_temp == pytest.approx(trainer.recipe.teacher_temp_start)
    trainer.train_step(trainer.x_train[:8])
    trainer.train_step(trainer.x_train[:8])                # step 2: the last layer learns
    assert not torch.equal(trainer.student.head.last_layer.weight, last_layer)
    assert trainer.task.teacher_temp == pytest.approx(0.04 + (0.07 - 0.04) * 2 / 4)
    assert trainer.recipe.weight_decay < decayed["weight_decay"] < trainer.recipe.weight_decay_end


def test_the_distillation_task_never_trains_its_teacher():
    trainer = distillation_trainer()
    before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    trainer.fit(progress=False)
    assert all(torch.equal(before[k], v) for k, v in trainer.teacher.state_dict().items())
    assert not trainer.teacher.training and not any(p.requires_grad for p in trainer.teacher.parameters())


def test_a_task_without_build_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="Task must say what it trains: define build"):
        Trainer(Task(), vit_trainer().recipe, *random_cifar_like(64, 40)[:1], dist_info=CPU)


def test_classification_asks_for_labels_and_test_images():
    with pytest.raises(ValueError, match="classification needs training labels and test images"):
        CifarTrainer(vit_trainer().recipe, random_cifar_like(64, 40)[0], None, None, None, dist_info=CPU)


def test_dino_has_no_test_evaluation_and_says_what_to_use():
    with pytest.raises(NotImplementedError, match="knn_accuracy"):
        dino_trainer().evaluate()


# -- one engine, and a library without import cycles -------------------------------------------------

LIBRARY = ROOT / "vitcourse"


def test_the_library_has_no_import_cycle():
    graph = import_graph(LIBRARY, ROOT)
    assert "vitcourse.engine" in graph and graph["vitcourse.dino"] >= {"vitcourse.engine", "vitcourse.augment"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_walker_sees_runtime_imports_only(tmp_path):
    modules = {"vitcourse.a", "vitcourse.b", "vitcourse.c", "vitcourse.pkg", "vitcourse.pkg.sub"}
    (tmp_path / "a.py").write_text("from vitcourse.b import x\nfrom vitcourse.pkg import sub\n")
    (tmp_path / "b.py").write_text("import vitcourse.a\nif TYPE_CHECKING:\n    import vitcourse.c\n"
                                   "def late():\n    from vitcourse.c import y\n")
    assert runtime_imports(tmp_path / "a.py", modules, ROOT) == {"vitcourse.b", "vitcourse.pkg.sub"}
    assert runtime_imports(tmp_path / "b.py", modules, ROOT) == {"vitcourse.a", "vitcourse.c"}


def test_one_training_loop_class_in_vitcourse():
    """Only the engine's Trainer defines a training loop (``fit`` over steps); everything else configures it.

    ``vitcourse.training.fit`` is chapter 5's deliberately small loop, a function, not a class."""
    loops = []
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
                if methods & {"fit", "train_step", "_step"}:
                    loops.append(f"{module_name(path, ROOT)}.{node.name}")
    assert loops == ["vitcourse.engine.Trainer"]


def test_import_vitcourse_in_a_fresh_interpreter():
    run = subprocess.run([sys.executable, "-c", "import vitcourse; print(vitcourse.__version__)"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == vitcourse.__version__
