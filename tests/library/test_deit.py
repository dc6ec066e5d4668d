"""DeiT (vitcourse.deit): the distillation loss by hand, the two-headed ViT, its size, the frozen teacher."""

import copy
import math
from dataclasses import replace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from vitcourse import cifar
from vitcourse.augment import to_unit_float
from vitcourse.cifar import Recipe, normalize, random_cifar_like
from vitcourse.classification import smooth_targets
from vitcourse.costs import param_count
from vitcourse.deit import (ABLATION, HELPED_MIN_GAIN, QUICK_BATCH, QUICK_TRAIN_IMAGES, CifarCNN,
                            DistillationTask, DistillationTrainer, DistilledViT, ModelTrainer, ablation_figure,
                            ablation_table, deit_config, distillation_helped, distillation_loss,
                            distillation_runs, distilled_param_count, evaluate_heads, head_logits, helped_bar,
                            learned_token_similarity, locality_ratio, one_head_loss, student_recipe_for,
                            reference_table, size_table, teacher_for, teacher_recipe_for, token_similarity,
                            train_ablation)
from vitcourse.stats import CLEAR_SE, binomial_se
from vitcourse.profile import Profile
from vitcourse.first_vit import count_parameters
from vitcourse.vit import ViTConfig, VisionTransformer

SMALL = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4, num_classes=5)
TINY = ViTConfig(image_size=32, patch_size=8, dim=16, depth=1, heads=2)

# Two samples, three classes. Teacher's decisions: argmax [3, 0, 1] = 0, argmax [0, 2, 1] = 1.
CLS = [[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
DIST = [[0.5, -1.0, 2.0], [1.0, 1.0, 0.0]]
TEACHER = [[3.0, 0.0, 1.0], [0.0, 2.0, 1.0]]
LABELS = [1, 2]


def log_softmax(row, tau=1.0):
    scaled = [v / tau for v in row]
    log_z = math.log(sum(math.exp(v) for v in scaled))
    return [v - log_z for v in scaled]


def cross_entropy(rows, labels):
    return sum(-log_softmax(row)[y] for row, y in zip(rows, labels)) / len(rows)


def tensors():
    return torch.tensor(CLS), torch.tensor(DIST), torch.tensor(LABELS), torch.tensor(TEACHER)


# -- the loss ---------------------------------------------------------------------------------------

def test_hard_distillation_by_hand():
    # ½ CE(cls, y) + ½ CE(dist, teacher's argmax); the teacher says classes 0 and 1.
    by_hand = 0.5 * cross_entropy(CLS, LABELS) + 0.5 * cross_entropy(DIST, [0, 1])
    assert distillation_loss(*tensors(), mode="hard").item() == pytest.approx(by_hand, rel=1e-6)
    # Per sample: CE(cls) = 0.40761, 0.55144; CE(dist, teacher) = 1.74131, 0.86199.
    assert by_hand == pytest.approx(0.5 * (0.40761 + 0.55144) / 2 + 0.5 * (1.74131 + 0.86199) / 2, abs=1e-5)


def test_soft_distillation_by_hand():
    tau, alpha = 2.0, 0.3
    kl = 0.0
    for teacher_row, dist_row in zip(TEACHER, DIST):
        log_t, log_s = log_softmax(teacher_row, tau), log_softmax(dist_row, tau)
        kl += sum(math.exp(lt) * (lt - ls) for lt, ls in zip(log_t, log_s))
    kl /= 2                                                    # summed over classes, averaged over the batch
    by_hand = (1 - alpha) * cross_entropy(CLS, LABELS) + alpha * tau**2 * kl
    got = distillation_loss(*tensors(), mode="soft", tau=tau, alpha=alpha)
    assert got.item() == pytest.approx(by_hand, rel=1e-6)
    assert got.dtype == torch.float32 and got.dim() == 0


def test_soft_limits_alpha_zero_is_plain_cross_entropy_and_a_perfect_copy_costs_nothing():
    cls, dist, labels, teacher = tensors()
    plain = F.cross_entropy(cls, labels)
    assert torch.allclose(distillation_loss(cls, dist, labels, teacher, "soft", alpha=0.0), plain)
    # Student's distillation head equal to the teacher: KL = 0, only (1 - α)·CE is left.
    assert torch.allclose(distillation_loss(cls, teacher, labels, teacher, "soft", tau=3.0, alpha=0.5), 0.5 * plain)


def test_target_distributions_work_like_class_indices():
    cls, dist, labels, teacher = tensors()
    one_hot = F.one_hot(labels, 3).float()
    for mode in ("hard", "soft"):
        assert torch.allclose(distillation_loss(cls, dist, one_hot, teacher, mode),
                              distillation_loss(cls, dist, labels, teacher, mode))
    smoothed = smooth_targets(labels, 3, 0.3)      # [0.1, 0.8, 0.1] and [0.1, 0.1, 0.8]
    by_hand = 0.5 * sum(-sum(t * lp for t, lp in zip(target, log_softmax(row)))
                        for row, target in zip(CLS, smoothed.tolist())) / 2 + 0.5 * cross_entropy(DIST, [0, 1])
    assert distillation_loss(cls, dist, smoothed, teacher, "hard").item() == pytest.approx(by_hand, rel=1e-6)


def test_no_gradient_reaches_the_teacher_logits():
    cls, dist, labels, teacher = (t.clone() for t in tensors())
    cls.requires_grad_(True), dist.requires_grad_(True), teacher.requires_grad_(True)
    for mode in ("hard", "soft"):
        distillation_loss(cls, dist, labels, teacher, mode).backward()
        assert teacher.grad is None
        assert cls.grad is not None and dist.grad is not None


def test_loss_errors_say_what_is_wrong():
    cls, dist, labels, teacher = tensors()
    with pytest.raises(ValueError, match="mode must be 'hard' or 'soft', got 'kl'"):
        distillation_loss(cls, dist, labels, teacher, mode="kl")
    with pytest.raises(ValueError, match=r"one shape, got cls_logits \(2, 3\), dist_logits \(2, 3\), teacher_logits \(2, 4\)"):
        distillation_loss(cls, dist, labels, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="not its eval-mode average"):
        distillation_loss(cls[0], dist[0], labels, teacher[0])
    with pytest.raises(ValueError, match=r"labels must be class indices \(B,\) = \(2,\)"):
        distillation_loss(cls, dist, torch.tensor([1, 2, 0]), teacher)
    with pytest.raises(ValueError, match="labels must be class indices"):
        distillation_loss(cls, dist, labels.float(), teacher)
    with pytest.raises(ValueError, match="tau .* must be > 0, got 0"):
        distillation_loss(cls, dist, labels, teacher, "soft", tau=0)
    with pytest.raises(ValueError, match=r"alpha .* must be in \[0, 1\], got 1.5"):
        distillation_loss(cls, dist, labels, teacher, "soft", alpha=1.5)


# -- the model --------------------------------------------------------------------------------------

def small(**changes) -> DistilledViT:
    torch.manual_seed(0)
    return DistilledViT(replace(SMALL, **changes))


def test_train_mode_returns_both_heads_and_eval_mode_their_mean():
    model = small()
    images = torch.rand(3, 3, 16, 16)
    model.train()
    cls_logits, dist_logits = model(images)
    assert cls_logits.shape == dist_logits.shape == (3, 5)
    assert not torch.allclose(cls_logits, dist_logits)        # two different heads on two different rows
    model.eval()
    cls_logits, dist_logits = model.forward_heads(images)
    assert torch.allclose(model(images), (cls_logits + dist_logits) / 2)
    tokens, _ = model.forward_features(images)
    assert tokens.shape == (3, 16 + 2, 32) and model.num_tokens == 18
    assert torch.allclose(cls_logits, model.head(tokens[:, 0])) and torch.allclose(dist_logits, model.head_dist(tokens[:, 1]))


def test_tokens_are_cls_then_dist_then_patches_each_with_its_position():
    model = small()
    x = model.embed(torch.rand(2, 3, 16, 16))
    assert torch.allclose(x[:, 0], (model.cls_token + model.pos_embed[:, 0])[0].expand(2, -1))
    assert torch.allclose(x[:, 1], (model.dist_token + model.pos_embed[:, 1])[0].expand(2, -1))
    no_positions = small(cls_position=False)
    x = no_positions.embed(torch.rand(2, 3, 16, 16))
    assert no_positions.pos_embed.shape == (1, 16, 32)
    assert torch.equal(x[:, 1], no_positions.dist_token[0].expand(2, -1))


def test_parameters_are_the_plain_vit_plus_token_position_row_and_head():
    d, k = SMALL.dim, SMALL.num_classes
    plain = count_parameters(VisionTransformer(SMALL))
    assert count_parameters(small()) == plain + d + d + (d * k + k) == distilled_param_count(SMALL)
    plain_without = count_parameters(VisionTransformer(replace(SMALL, cls_position=False)))
    assert count_parameters(small(cls_position=False)) == plain_without + d + (d * k + k)
    assert distilled_param_count(replace(SMALL, cls_position=False)) == plain_without + d + d * k + k


def test_deit_sizes_match_the_published_5_22_86_million():
    for name, zoo, zoo_distilled in (("Ti", 5, 6), ("S", 22, 22), ("B", 86, 87)):
        config = deit_config(name)
        with torch.device("meta"):                              # shapes only
            built = count_parameters(DistilledViT(config))
        assert built == distilled_param_count(config)
        assert zoo <= param_count(config) / 1e6 < zoo + 1       # the zoo cuts 5.72 M to "5 M"
        assert round(built / 1e6) == zoo_distilled
    assert size_table().loc["B", "distilled params"] == 87_338_192


def test_starts_from_the_plain_vits_weights_for_the_same_seed():
    torch.manual_seed(0)
    plain = VisionTransformer(SMALL).state_dict()
    distilled = small().state_dict()
    assert set(distilled) - set(plain) == {"dist_token", "head_dist.weight", "head_dist.bias"}
    assert all(torch.equal(plain[k], distilled[k]) for k in plain if k != "pos_embed")
    keep = [0] + list(range(2, 18))                              # every row but DIST's
    assert torch.equal(distilled["pos_embed"][:, keep], plain["pos_embed"])


def test_model_errors():
    with pytest.raises(ValueError, match="needs pool='cls'; got pool='mean'"):
        DistilledViT(replace(SMALL, pool="mean"))
    with pytest.raises(ValueError, match="unknown DeiT size 'L'"):
        deit_config("L")
    with pytest.raises(ValueError, match="needs a DistilledViT"):
        token_similarity(VisionTransformer(SMALL), torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="channels-last"):
        CifarCNN()(torch.rand(2, 32, 32, 3))


def test_token_similarity_is_the_cosine_of_rows_zero_and_one():
    model = small()
    images = torch.rand(4, 3, 16, 16)
    sims = token_similarity(model, images)
    assert list(sims.index) == ["input", "block 1", "block 2", "output"]
    model.eval()
    with torch.no_grad():
        tokens, _ = model.forward_features(images)
        x = model.embed(images)
    assert sims["output"] == pytest.approx(float(F.cosine_similarity(tokens[:, 0], tokens[:, 1]).mean()), abs=1e-6)
    assert sims["input"] == pytest.approx(float(F.cosine_similarity(x[:, 0], x[:, 1]).mean()), abs=1e-6)
    vectors = learned_token_similarity(model)
    by_hand = F.cosine_similarity(model.cls_token.detach().flatten(), model.dist_token.detach().flatten(), 0)
    assert vectors == pytest.approx(float(by_hand))


def test_cifar_cnn_shapes():
    model = CifarCNN((8, 16), convs_per_stage=2, num_classes=7)
    assert model(torch.rand(3, 3, 32, 32)).shape == (3, 7)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 4


def test_locality_ratio_by_hand():
    # A 3×3 grid after one special token: weight 2 to each neighbour, 1 to patches two steps away.
    grid, special = 3, 1
    weights = torch.zeros(1, 1, 10, 10)
    for i in range(9):
        for j in range(9):
            step = max(abs(i // 3 - j // 3), abs(i % 3 - j % 3))
            weights[0, 0, special + i, special + j] = {0: 7.0, 1: 2.0, 2: 1.0}[step]
    weights[0, 0, 0] = 9.0                                     # the special token's row is ignored
    assert locality_ratio(weights, grid, special) == pytest.approx(2.0)
    assert locality_ratio(torch.full((2, 3, 10, 10), 0.1), grid, special) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"T = special_tokens \+ grid² = 10, got \(1, 1, 9, 9\)"):
        locality_ratio(torch.zeros(1, 1, 9, 9), 3, 1)
    with pytest.raises(ValueError, match="grid must be at least 3"):
        locality_ratio(torch.zeros(1, 1, 5, 5), 2, 1)


def test_reference_gains():
    table = reference_table()
    assert table["gain (points)"].tolist() == [2.3, 1.3, 1.6]


# -- training against a frozen teacher --------------------------------------------------------------

def tiny_recipe(**changes) -> Recipe:
    base = Recipe(model=TINY, epochs=1, batch_size=16, warmup_epochs=0.0, mixup_alpha=0.8, cutmix_alpha=1.0,
                  mix_prob=1.0, seed=3)
    return replace(base, **changes)


def test_teacher_gets_no_gradient_and_does_not_change_while_the_student_learns():
    arrays = random_cifar_like(64, 40, seed=1)
    cpu = cifar.Dist(device=torch.device("cpu"))
    teacher_trainer = ModelTrainer(tiny_recipe(), lambda: CifarCNN((4, 8)), *arrays, dist_info=cpu)
    teacher_trainer.fit(progress=False)
    teacher = teacher_trainer.model
    before = copy.deepcopy(teacher.state_dict())                  # BatchNorm running statistics included
    trainer = DistillationTrainer(tiny_recipe(), teacher, *arrays, mode="soft", tau=2.0, dist_info=cpu)
    student_before = copy.deepcopy(trainer.model.state_dict())
    trainer.fit(progress=False)
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not torch.equal(student_before["dist_token"], trainer.model.dist_token)


def test_evaluate_heads_average_row_is_the_eval_mode_accuracy():
    arrays = random_cifar_like(64, 40, seed=1)
    cpu = cifar.Dist(device=torch.device("cpu"))
    trainer = DistillationTrainer(tiny_recipe(), CifarCNN((4, 8)), *arrays, dist_info=cpu)
    trainer.fit(progress=False)
    heads = trainer.evaluate_heads()
    assert heads.loc["average of both", "test accuracy"] == trainer.evaluate()[1]
    assert heads.loc["teacher", "agrees with teacher"] == 1.0
    images = normalize(to_unit_float(trainer.x_test))
    teacher_right = (trainer.teacher(images).argmax(-1) == trainer.y_test).float().mean().item()
    assert heads.loc["teacher", "test accuracy"] == pytest.approx(teacher_right)


def test_distillation_trainer_checks_the_mode():
    with pytest.raises(ValueError, match="mode must be 'hard' or 'soft', got 'none'"):
        DistillationTrainer(tiny_recipe(), CifarCNN((4, 8)), *random_cifar_like(64, 40), mode="none")


# -- the ablation: the same loss with and without the distillation token ---------------------------

CPU = cifar.Dist(device=torch.device("cpu"))
ABLATION_NAMES = list(ABLATION)


def test_tested_after_the_last_epoch_only_leaves_the_other_rows_empty():
    arrays = random_cifar_like(64, 40, seed=1)
    every = ModelTrainer(tiny_recipe(epochs=3), lambda: CifarCNN((4, 8)), *arrays, dist_info=CPU)
    last = ModelTrainer(tiny_recipe(epochs=3), lambda: CifarCNN((4, 8)), *arrays, dist_info=CPU,
                        test_every_epoch=False)
    every_history, last_history = every.fit(progress=False), last.fit(progress=False)
    assert every_history["test_acc"].notna().all()
    assert last_history["test_acc"].isna().tolist() == [True, True, False]
    # the same run either way: the training losses and the final score are the same numbers
    assert last_history["train_loss"].tolist() == every_history["train_loss"].tolist()
    assert last_history["test_acc"].iloc[-1] == every_history["test_acc"].iloc[-1] == last.evaluate()[1]


def test_without_the_token_both_terms_of_the_loss_fall_on_the_cls_head():
    torch.manual_seed(0)
    teacher, student = CifarCNN((4, 8)).eval(), VisionTransformer(TINY)
    task = DistillationTask(teacher, normalize, build_model=lambda: student, mode="soft", tau=2.0, alpha=0.7)
    images, targets = torch.randn(4, 3, 32, 32), smooth_targets(torch.tensor([0, 1, 2, 3]), 10, 0.1)
    trainer = type("Fake", (), {"network": student})()
    logits = student(images)
    expected = distillation_loss(logits, logits, targets, teacher(images), "soft", 2.0, 0.7)
    assert torch.allclose(task.loss(trainer, images, targets)["loss"], expected)
    # hard: ½ CE(z, y) + ½ CE(z, teacher's decision), one head for both
    task.mode = "hard"
    expected = distillation_loss(logits, logits, targets, teacher(images), "hard")
    assert torch.allclose(task.loss(trainer, images, targets)["loss"], expected)


def test_token_false_trains_a_plain_vit_and_the_token_true_the_same_weights_plus_the_token():
    arrays = random_cifar_like(64, 40, seed=1)
    teacher = CifarCNN((4, 8))
    plain = DistillationTrainer(tiny_recipe(), teacher, *arrays, token=False, dist_info=CPU)
    deit = DistillationTrainer(tiny_recipe(), teacher, *arrays, dist_info=CPU)
    assert type(plain.model) is VisionTransformer and type(deit.model) is DistilledViT
    shared = {k: v for k, v in plain.model.state_dict().items() if k != "pos_embed"}
    assert all(torch.equal(v, deit.model.state_dict()[k]) for k, v in shared.items())
    plain.fit(progress=False)
    assert not torch.equal(plain.model.head.weight, deit.model.head.weight)      # it learnt


def test_head_logits_names_each_reading():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 32, 32)
    deit, plain = DistilledViT(TINY).eval(), VisionTransformer(TINY).eval()
    heads = head_logits(deit, images)
    assert list(heads) == ["CLS head", "distillation head", "average of both"]
    cls_logits, dist_logits = deit.forward_heads(images)
    assert torch.equal(heads["distillation head"], dist_logits)
    assert torch.allclose(heads["average of both"], deit(images))
    assert list(head_logits(plain, images)) == ["CLS head"]
    assert torch.equal(head_logits(plain, images)["CLS head"], plain(images))


def test_evaluate_heads_scores_a_plain_vit_against_any_teacher_by_hand():
    arrays = random_cifar_like(64, 40, seed=2)
    trainer = ModelTrainer(tiny_recipe(), lambda: VisionTransformer(TINY), *arrays, dist_info=CPU)
    trainer.fit(progress=False)
    teacher = CifarCNN((4, 8)).eval()
    heads = evaluate_heads(trainer, teacher, batch_size=7)        # uneven batches: counts still exact
    assert list(heads.index) == ["CLS head", "teacher"]
    images = normalize(to_unit_float(trainer.x_test))
    with torch.no_grad():
        mine, theirs = trainer.model.eval()(images).argmax(-1), teacher(images).argmax(-1)
    share = lambda same: same.float().mean().item()  # noqa: E731
    assert heads.loc["CLS head", "test accuracy"] == pytest.approx(share(mine == trainer.y_test))
    assert heads.loc["CLS head", "agrees with teacher"] == pytest.approx(share(mine == theirs))
    assert heads.loc["teacher", "agrees with teacher"] == 1.0


def test_ablation_trains_three_students_per_seed_and_averages_their_heads():
    arrays = random_cifar_like(64, 40, seed=1)
    teacher = CifarCNN((4, 8))
    lines = []
    trainers = train_ablation(tiny_recipe(), teacher, arrays, [0, 1], {"mode": "hard"}, report=lines.append)
    assert list(trainers) == [(seed, variant) for seed in (0, 1) for variant in ABLATION]
    assert len(lines) == 6 and lines[0].startswith("(a) no distillation, seed 0: test accuracy ")
    assert all(line.endswith(" %") for line in lines)  # accuracies in %, as the book shows them
    assert all(len(line) <= 88 for line in lines)
    assert trainers[1, "(b) distilled CLS head"].recipe.seed == 1
    assert type(trainers[0, "(b) distilled CLS head"].model) is VisionTransformer
    assert type(trainers[0, "(c) CLS + DIST tokens"].model) is DistilledViT
    table = ablation_table(trainers, teacher)
    assert table.index.names == ["variant", "head"]
    assert list(table.index) == [("(a) no distillation", "CLS head"), ("(b) distilled CLS head", "CLS head"),
                                 ("(c) CLS + DIST tokens", "CLS head"),
                                 ("(c) CLS + DIST tokens", "distillation head"),
                                 ("(c) CLS + DIST tokens", "average of both"), ("teacher", "—")]
    runs = [evaluate_heads(trainers[s, "(c) CLS + DIST tokens"], teacher) for s in (0, 1)]
    mean = (runs[0].loc["distillation head"] + runs[1].loc["distillation head"]) / 2
    assert table.loc[("(c) CLS + DIST tokens", "distillation head")].tolist() == pytest.approx(mean.tolist())
    with pytest.raises(ValueError, match="needs trained runs"):
        ablation_table({}, teacher)


def test_ablation_figure_draws_every_head_and_every_layer():
    import matplotlib

    matplotlib.use("Agg")
    index = pd.MultiIndex.from_tuples([(ABLATION_NAMES[0], "CLS head"), (ABLATION_NAMES[2], "CLS head"),
                                       (ABLATION_NAMES[2], "distillation head"), ("teacher", "—")],
                                      names=["variant", "head"])
    results = pd.DataFrame({"test accuracy": [0.5, 0.6, 0.55, 0.8],
                            "agrees with teacher": [0.6, 0.7, 0.75, 1.0]}, index=index)
    similarity = pd.DataFrame({"(c) trained": [0.1, 0.9, 0.95]}, index=["input", "block 1", "output"])
    fig = ablation_figure(results, similarity, n_test=400)
    left, right = fig.axes
    heights = sorted(round(bar.get_height(), 2) for bar in left.patches)
    assert heights == [0.5, 0.55, 0.6, 0.6, 0.7, 0.75]                     # the teacher is a line, not bars
    assert [t.get_text() for t in left.get_xticklabels()] == ["(a)\nCLS", "(c)\nCLS", "(c)\nDIST"]
    assert left.get_ylim() == (0.0, 1.0)                                    # bars start at 0
    assert left.lines[-1].get_ydata()[0] == 0.8                             # the teacher's accuracy
    # ± one binomial standard error on the 400 test images, on every bar
    caps = [c for c in left.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    spans = sorted(round(float(seg[1, 1] - seg[0, 1]) / 2, 6) for c in caps for seg in c.lines[2][0].get_segments())
    assert spans == sorted(round(binomial_se(p, 400), 6) for p in [0.5, 0.6, 0.55, 0.6, 0.7, 0.75])
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["test accuracy", "agrees with teacher",
                                                                     "teacher's accuracy"]
    assert [t.get_text() for t in right.get_xticklabels()] == ["input", "1", "output"]
    assert right.lines[-1].get_ydata()[0] == 0.93                           # the paper's mark at the output
    assert right.get_legend().get_texts()[-1].get_text() == "DeiT paper (ImageNet), output: 0.93"
    matplotlib.pyplot.close(fig)


def test_distillation_helped_needs_the_margin_the_standard_errors_and_every_seed():
    assert HELPED_MIN_GAIN == 0.02 and CLEAR_SE == 2
    assert distillation_helped(0.03, 0.01, [0.02, 0.04])
    assert distillation_helped(0.02, 0.0099, [0.01])                        # the bar itself counts
    assert not distillation_helped(0.019, 0.001, [0.02, 0.02])              # under 2 points
    assert not distillation_helped(0.03, 0.015, [0.02, 0.04])               # exactly 2 standard errors
    assert not distillation_helped(0.03, 0.01, [0.07, -0.001])              # one seed lost
    assert not distillation_helped(-0.05, 0.01, [-0.05])                    # clearly worse is no help
    with pytest.raises(ValueError, match="at least one seed"):
        distillation_helped(0.03, 0.01, [])
    assert helped_bar() == ("at least 2 points, more than two standard errors above zero, "
                            "and a gain with each seed")


def test_one_head_loss_is_classic_distillation_only_when_soft():
    assert one_head_loss({"mode": "soft", "tau": 2.0, "alpha": 0.7}).startswith("classic knowledge distillation")
    assert one_head_loss({"mode": "hard"}).startswith("the teacher's decision as a second label")
    assert "classic" not in one_head_loss({"mode": "hard"})
    assert one_head_loss({}) == one_head_loss({"mode": "hard"})              # distillation_loss's default
    for settings in distillation_runs(Profile("quick", "t")).values():
        assert "classic" in one_head_loss(settings)
    for settings in distillation_runs(Profile("full", "t")).values():
        assert "hard distillation" in one_head_loss(settings)
    with pytest.raises(ValueError, match="got 'kl'"):
        one_head_loss({"mode": "kl"})


# -- the recipes -------------------------------------------------------------------------------------

QUICK, FULL = Profile("quick", "test"), Profile("full", "test")


def test_quick_students_are_data_limited_and_the_teacher_trains_longer_on_the_same_images():
    student, teacher = student_recipe_for(QUICK), teacher_recipe_for(QUICK)
    assert student.train_subset == teacher.train_subset == QUICK_TRAIN_IMAGES < cifar.quick_vit_recipe().train_subset
    assert teacher.epochs > student.epochs > cifar.quick_vit_recipe().epochs
    assert student.batch_size == QUICK_BATCH < cifar.quick_vit_recipe().batch_size      # more steps per image
    # everything else is chapter 6's quick recipe
    assert replace(student, epochs=3, train_subset=10_000, batch_size=128) == cifar.quick_vit_recipe()
    assert replace(teacher, epochs=student.epochs, batch_size=QUICK_BATCH) == student
    assert student_recipe_for(QUICK, seed=4).seed == 4 and teacher_recipe_for(QUICK, epochs=2).epochs == 2
    assert isinstance(teacher_for(QUICK), CifarCNN)


def test_full_recipes_are_chapter_6s_run_and_a_60_epoch_teacher():
    assert student_recipe_for(FULL) == cifar.full_vit_recipe()
    assert teacher_recipe_for(FULL) == cifar.full_vit_recipe(epochs=60, warmup_epochs=3.0)


def test_distillation_runs_are_soft_in_quick_and_hard_in_full():
    quick, full = distillation_runs(QUICK), distillation_runs(FULL)
    assert list(quick) == ["soft"] and list(full) == ["hard"]
    assert quick["soft"] == {"mode": "soft", "tau": 2.0, "alpha": 0.7}
    for runs in (quick, full):                                   # each is a valid DistillationTrainer call
        for name, settings in runs.items():
            assert settings["mode"] == name
            loss = distillation_loss(*tensors(), **settings)
            assert torch.isfinite(loss) and loss > 0


def test_chapter_8_scores_on_test_images_that_chose_nothing():
    """The quick budget was chosen on the stand-in's first test images; the students are scored
    on the ones after them, drawn from the same generator, writable like any data set's arrays."""
    from types import SimpleNamespace

    import numpy as np
    from vitcourse.data.synthetic import synthetic_split
    from vitcourse.deit import BUDGET_TRIAL_TEST, unchosen_test_images

    standin = SimpleNamespace(name="synthetic-cifar", synthetic=True)
    x, y = unchosen_test_images(standin, n=1_000)
    first_x, first_y = synthetic_split("synthetic-cifar", "test", BUDGET_TRIAL_TEST + 1_000)
    assert x.shape == (1_000, 32, 32, 3) and x.flags.writeable and y.flags.writeable
    assert np.array_equal(x, first_x[BUDGET_TRIAL_TEST:]) and np.array_equal(y, first_y[BUDGET_TRIAL_TEST:])
    assert not np.array_equal(x, first_x[:1_000])          # not the images the budget was chosen on
    real = SimpleNamespace(name="cifar10", synthetic=False, x_test=first_x[:2_500], y_test=first_y[:2_500])
    with pytest.raises(ValueError, match="cifar10 has 2,500 test images; 4,000 are needed"):
        unchosen_test_images(real)
