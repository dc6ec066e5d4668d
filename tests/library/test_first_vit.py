import pytest
import torch
from torch import nn

from vitcourse.first_vit import (
    FashionCNN,
    FirstViT,
    FirstViTConfig,
    SelfAttention,
    attend,
    count_parameters,
    has_plateaued,
    parameter_table,
    race_cnn,
)
from vitcourse.training import evaluate, fit, predict


@pytest.fixture
def model():
    torch.manual_seed(0)
    return FirstViT()


def test_first_vit_has_the_course_parameter_count(model):
    # embed 16·64+64, positions 49·64, qkv 64·192+192, proj 64·64+64, 2 LayerNorms 2·128,
    # feed-forward 64·128+128 + 128·64+64, head 64·64+64 + 64·10+10
    by_hand = 1088 + 3136 + 12480 + 4160 + 256 + 8320 + 8256 + 4160 + 650
    assert by_hand == 42_506
    assert count_parameters(model) == 42_506
    table = parameter_table(model)
    assert table["params"].sum() == 42_506
    assert table.loc["positions", "shapes"] == "49×64"        # the position table
    assert table.loc["positions", "type"] == "Parameter"
    assert table.loc["encoder.attention.qkv", "params"] == 12_480


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_logits_shape(model, batch):
    assert model(torch.rand(batch, 49, 16)).shape == (batch, 10)


def test_attention_weights_are_softmax_rows(model):
    weights = model.attention_maps(torch.rand(3, 49, 16))
    assert weights.shape == (3, 4, 49, 49)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 49), atol=1e-6)
    assert (weights >= 0).all()


def test_weights_path_and_fused_path_agree(model):
    model.eval()
    x = torch.rand(4, 49, 16)
    logits, _ = model(x, return_attention=True)
    assert torch.allclose(logits, model(x), atol=1e-5)


def test_attention_equals_hand_written_reference():
    torch.manual_seed(1)
    attention = SelfAttention(64, 4)
    x = torch.randn(2, 49, 64)
    out, weights = attention(x, return_weights=True)
    q, k, v = attention.qkv(x).split(64, dim=-1)
    heads = lambda t: t.view(2, 49, 4, 16).transpose(1, 2)          # (B, H, L, 16)
    scores = heads(q) @ heads(k).transpose(-2, -1) / 4.0              # √16 = 4
    reference_weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    reference_weights = reference_weights / reference_weights.sum(-1, keepdim=True)
    mixed = (reference_weights @ heads(v)).transpose(1, 2).reshape(2, 49, 64)
    assert torch.allclose(weights, reference_weights, atol=1e-6)
    assert torch.allclose(out, attention.proj(mixed), atol=1e-5)


def _attention_reference(q, k, v):
    """softmax(q kᵀ/√d) v in float64, written out."""
    q, k, v = (t.double() for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    return (weights / weights.sum(-1, keepdim=True)) @ v


def test_attend_uses_the_fused_kernel_in_float32(monkeypatch):
    q, k, v = torch.randn(3, 2, 4, 49, 16).unbind(0)
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(1) or fused(*a, **kw))
    mixed, weights = attend(q, k, v)
    assert calls == [1] and weights is None
    assert torch.allclose(mixed.double(), _attention_reference(q, k, v), atol=1e-5)


def test_attend_goes_step_by_step_in_bf16_under_cpu_autocast(monkeypatch):
    q, k, v = torch.randn(3, 2, 4, 49, 16).unbind(0)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **kw: pytest.fail("the fused kernel has no fast bf16 path on CPU"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, weights = attend(q, k, v)
    assert mixed.dtype == torch.bfloat16 and weights is None
    # bf16 keeps 8 significant bits: values of size ~1 agree to about 1e-2.
    assert torch.allclose(mixed.double(), _attention_reference(q, k, v), atol=3e-2)


def test_attend_keeps_the_softmax_in_float32_under_cpu_autocast(monkeypatch):
    q, k, v = torch.randn(3, 2, 4, 49, 16).unbind(0)
    softmax_dtypes = []
    softmax = torch.softmax
    monkeypatch.setattr(torch, "softmax", lambda *a, **kw: (lambda w: softmax_dtypes.append(w.dtype) or w)(
        softmax(*a, **kw)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, weights = attend(q, k, v, return_weights=True)
    # CPU autocast alone would give bf16 weights (8 significant bits: rows off by ~1e-2).
    assert softmax_dtypes == [torch.float32] and weights.dtype == torch.float32
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 49), atol=1e-6)
    _, weights64 = attend(*(t.double() for t in (q, k, v)), return_weights=True)
    assert weights64.dtype == torch.float64                # never rounded down to float32


def test_attend_returns_weights_whose_rows_sum_to_one():
    q, k, v = torch.randn(3, 2, 4, 49, 16).unbind(0)
    mixed, weights = attend(q, k, v, return_weights=True)
    assert weights.shape == (2, 4, 49, 49)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 49), atol=1e-6)
    assert torch.allclose(mixed.double(), _attention_reference(q, k, v), atol=1e-5)


def test_attention_equals_nn_multihead_attention_with_the_same_weights():
    torch.manual_seed(2)
    ours = SelfAttention(64, 4)
    theirs = nn.MultiheadAttention(64, 4, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(3, 49, 64)
    out, weights = ours(x, return_weights=True)
    expected, expected_weights = theirs(x, x, x, average_attn_weights=False)
    assert torch.allclose(ours(x)[0], expected, atol=1e-5)
    assert torch.allclose(weights, expected_weights, atol=1e-6)


def test_position_table_trains(model):
    before = model.positions.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = nn.functional.cross_entropy(model(torch.rand(8, 49, 16)), torch.randint(0, 10, (8,)))
    loss.backward()
    assert model.positions.grad is not None and model.positions.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(before, model.positions.detach())


def test_dropout_only_in_train_mode(model):
    x = torch.rand(16, 49, 16)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("shape, hint", [((2, 28, 28, 1), "extract_patches"), ((2, 49, 15), r"\(B, 49, 16\)")])
def test_wrong_input_shape_says_what_was_expected(model, shape, hint):
    with pytest.raises(ValueError, match=hint):
        model(torch.rand(*shape))


def test_config_rejects_sizes_that_do_not_fit():
    with pytest.raises(ValueError, match="must divide"):
        FirstViTConfig(patch_size=5)
    with pytest.raises(ValueError, match="heads"):
        FirstViTConfig(heads=5)


def test_cnn_shapes_count_and_error():
    cnn = FashionCNN()
    assert cnn(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    # conv 1·32·9+32, conv 32·64·9+64, dense 1600·64+64, dense 64·10+10
    assert count_parameters(cnn) == 320 + 18_496 + 102_464 + 650 == 121_930
    with pytest.raises(ValueError, match="unsqueeze"):
        cnn(torch.rand(3, 28, 28))


def _separable_problem(n=512, seed=0):
    """Class = which of 4 quadrants is bright: a small model learns it in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.rand(n, 28, 28, generator=g) * 0.2
    for i, label in enumerate(labels.tolist()):
        r, c = divmod(label, 2)
        images[i, r * 14:(r + 1) * 14, c * 14:(c + 1) * 14] += 0.8
    return images.unsqueeze(1), labels


def test_race_cnn_is_within_the_vits_parameter_budget():
    cnn, vit = race_cnn(), FirstViT()
    # conv 1·16·9+16, conv 16·32·9+32, dense 800·48+48, out 48·10+10
    assert count_parameters(cnn) == 160 + 4640 + 38448 + 490 == 43_738
    assert abs(count_parameters(cnn) / count_parameters(vit) - 1) < 0.15
    assert cnn(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert count_parameters(FashionCNN()) == 121_930  # the default, assignment 2's, unchanged


def test_has_plateaued_compares_the_last_epochs_with_the_best_before():
    assert has_plateaued([0.5, 0.7, 0.80, 0.805, 0.80, 0.809])
    assert not has_plateaued([0.5, 0.7, 0.80, 0.805, 0.80, 0.811])  # +1.1 points: still climbing
    assert not has_plateaued([0.40, 0.64, 0.73], last=2)
    assert has_plateaued([0.9, 0.5, 0.5, 0.5])                      # falling is not climbing
    with pytest.raises(ValueError, match="more than last=3"):
        has_plateaued([0.5, 0.6, 0.7])


def test_fit_learns_and_history_records_every_epoch():
    torch.manual_seed(0)
    x, y = _separable_problem()
    model = FashionCNN(channels=(4, 8), hidden=16, classes=4)
    history = fit(model, x[:384], y[:384], x[384:], y[384:], epochs=6, lr=3e-3, batch_size=32,
                  progress=False, device="cpu")
    frame = history.to_frame()
    assert list(frame.index) == [1, 2, 3, 4, 5, 6]
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]
    assert frame["val_acc"].iloc[-1] > 0.9


def test_fit_is_repeatable_with_a_seed():
    x, y = _separable_problem(128)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = FashionCNN(channels=(4, 8), hidden=16, classes=4)
        runs.append(fit(model, x, y, epochs=1, seed=7, progress=False, device="cpu").train_loss)
    assert runs[0] == runs[1]


class _DtypeSpy(nn.Module):
    """A small classifier that records the dtype its first matrix product produced while training."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 4))
        self.seen = set()

    def forward(self, x):
        hidden = self.net[1](self.net[0](x))
        if self.training:
            self.seen.add(hidden.dtype)
        return self.net[3](self.net[2](hidden))


@pytest.mark.parametrize("mixed, dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_fit_mixed_precision_runs_products_in_bf16_and_keeps_float32_state(mixed, dtype):
    torch.manual_seed(0)
    x, y = _separable_problem(256)
    model = _DtypeSpy()
    history = fit(model, x, y, epochs=4, lr=3e-3, batch_size=32, progress=False, device="cpu",
                  mixed_precision=mixed)
    assert model.seen == {dtype}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert history.train_loss[-1] < history.train_loss[0] / 2       # it still learns
    assert history.train_acc[-1] > 0.9


def test_fit_default_precision_is_float32_on_cpu():
    # Opt-in on CPUs, even with bf16 units: nn.MultiheadAttention trains slower under CPU autocast.
    x, y = _separable_problem(64)
    model = _DtypeSpy()
    fit(model, x, y, epochs=1, progress=False, device="cpu")
    assert model.seen == {torch.float32}


def test_max_steps_stops_early():
    x, y = _separable_problem(640)
    history = fit(FashionCNN(channels=(4, 8), hidden=16, classes=4), x, y, epochs=5, batch_size=64,
                  max_steps=3, progress=False, device="cpu")
    assert len(history.train_loss) == 1


def test_evaluate_and_predict_match_a_hand_count():
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3, 2))
        model.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, -1.0]])
    y = torch.tensor([0, 1, 0, 2])
    assert predict(model, x).tolist() == [0, 1, 1, 2]
    loss, accuracy = evaluate(model, x, y)
    assert accuracy == 3 / 4
    expected = nn.functional.cross_entropy(model(x), y).item()
    assert loss == pytest.approx(expected, rel=1e-6)


def test_fit_rejects_integer_images_and_mismatched_labels():
    model = nn.Linear(4, 2)
    with pytest.raises(TypeError, match="scale images"):
        fit(model, torch.zeros(8, 4, dtype=torch.uint8), torch.zeros(8), epochs=1, progress=False)
    with pytest.raises(ValueError, match="8 inputs but 7 labels"):
        fit(model, torch.zeros(8, 4), torch.zeros(7), epochs=1, progress=False)


def test_evaluation_does_not_depend_on_its_batch_size():
    torch.manual_seed(0)
    model = FashionCNN(channels=(4, 8), hidden=16, classes=4)
    x, y = _separable_problem(300)
    loss, acc = evaluate(model, x, y)                 # default batch on the CPU: 256, so two batches
    loss_7, acc_7 = evaluate(model, x, y, batch_size=7)
    assert acc == acc_7 and abs(loss - loss_7) < 1e-5
    assert torch.equal(predict(model, x), predict(model, x, batch_size=7))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        evaluate(model, x, y, batch_size=0)


def test_flat_adam_makes_exactly_the_updates_of_torch_adam():
    from vitcourse.training import FlatAdam

    torch.manual_seed(0)
    reference, flat_model = FirstViT(), FirstViT()
    flat_model.load_state_dict(reference.state_dict())
    models = (reference, flat_model)
    for model in models:
        model.eval()                                      # no dropout: the same function twice
    # PyTorch's per-tensor Adam does the same operations as FlatAdam.step, so even the rounding agrees.
    adam = torch.optim.Adam(reference.parameters(), lr=1e-3, foreach=False)
    flat = FlatAdam(flat_model, lr=1e-3)
    assert flat.flat.numel() == 42_506 and len(flat.params) == 19   # one buffer for 19 tensors
    for step in range(5):
        x, y = torch.rand(8, 49, 16), torch.randint(0, 10, (8,))
        for model, optimizer in zip(models, (adam, flat)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            if optimizer is flat:
                flat.check_gradients()
            optimizer.step()
    for (name, want), got in zip(reference.named_parameters(), flat_model.parameters()):
        assert torch.equal(got, want), (name, (got - want).abs().max())
    first = next(reference.parameters())                  # the start of the flat buffer
    assert torch.equal(flat.exp_avg_sq[:first.numel()], adam.state[first]["exp_avg_sq"].reshape(-1))
    assert not torch.equal(reference.embed.weight, FirstViT().embed.weight)   # it did train


def test_flat_adam_notices_a_replaced_gradient():
    from vitcourse.training import FlatAdam

    model = nn.Linear(3, 2)
    flat = FlatAdam(model, lr=0.1)
    model.weight.grad = torch.zeros(2, 3)                 # a fresh tensor, outside the buffer
    with pytest.raises(RuntimeError, match="grad was replaced"):
        flat.check_gradients()


def test_fit_falls_back_to_torch_adam_for_mixed_parameter_dtypes():
    from vitcourse.training import FlatAdam

    torch.manual_seed(0)
    model = _DtypeSpy()
    model.scale = nn.Parameter(torch.ones((), dtype=torch.float64))
    assert not FlatAdam.supports(model) and FlatAdam.supports(_DtypeSpy())
    x, y = _separable_problem(256)
    history = fit(model, x, y, epochs=3, lr=3e-3, batch_size=32, progress=False, device="cpu")
    assert history.train_loss[-1] < history.train_loss[0] / 2


def test_a_model_trained_by_fit_saves_and_loads_like_any_other(tmp_path):
    torch.manual_seed(0)
    x, y = _separable_problem(64)
    model = _DtypeSpy()
    fit(model, x, y, epochs=1, progress=False, device="cpu")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    fresh = _DtypeSpy()
    fresh.load_state_dict(torch.load(tmp_path / "model.pt"))
    model.eval(), fresh.eval()
    assert torch.equal(fresh(x), model(x))
    n_bytes = 4 * count_parameters(model)
    assert n_bytes < (tmp_path / "model.pt").stat().st_size < 1.5 * n_bytes   # one copy of the weights


def test_flat_adam_working_copy_is_the_master_rounded_to_bf16():
    from vitcourse.training import FlatAdam

    torch.manual_seed(0)
    model = _DtypeSpy()
    reference = _DtypeSpy()
    reference.load_state_dict(model.state_dict())
    flat = FlatAdam(model, lr=1e-2, working_dtype=torch.bfloat16)
    adam = FlatAdam(reference, lr=1e-2)                    # float32 all the way
    x, y = _separable_problem(32)
    for _ in range(3):
        flat.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):   # as fit runs it: float32 inputs, bf16 weights
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        flat.check_gradients()
        assert {p.dtype for p in model.parameters()} == {p.grad.dtype for p in model.parameters()} == {torch.bfloat16}
        flat.step()
        assert torch.equal(flat.working, flat.flat.detach().to(torch.bfloat16))   # refreshed every step
        # Adam on the master saw the bf16 gradients, upcast: exactly that and nothing else.
        adam.zero_grad()
        adam.flat.grad.copy_(flat.working.grad)
        adam.step()
        assert torch.equal(adam.flat, flat.flat)
    with flat.master_weights():                            # evaluation sees the float32 master
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert torch.equal(model.net[1].weight.reshape(-1), flat.flat[:16 * 28 * 28].detach())
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    flat.finish()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    assert model.net[1].weight.untyped_storage().data_ptr() == flat.flat.untyped_storage().data_ptr()


def test_fit_in_mixed_precision_validates_and_ends_on_the_float32_weights():
    torch.manual_seed(0)
    x, y = _separable_problem(256)
    model = _DtypeSpy()
    history = fit(model, x[:192], y[:192], x[192:], y[192:], epochs=3, lr=3e-3, batch_size=32,
                  progress=False, device="cpu", mixed_precision=True)
    # The last validation ran on the same float32 weights the model keeps after fit.
    assert (history.val_loss[-1], history.val_acc[-1]) == evaluate(model, x[192:], y[192:])
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_an_interrupted_mixed_precision_fit_leaves_float32_weights():
    torch.manual_seed(0)
    x, y = _separable_problem(256)
    model = _DtypeSpy()
    calls = []

    def interrupt(module, inputs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt            # a reader pressing stop in JupyterLab
    model.register_forward_pre_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(model, x, y, epochs=2, batch_size=32, progress=False, device="cpu", mixed_precision=True)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model(x[:4]).dtype == torch.float32   # usable as it is, trained for two steps


def test_mixed_precision_keeps_float32_weights_for_models_with_float_buffers():
    # BatchNorm's running statistics must match its weights' dtype: autocast alone, no bf16 copy.
    torch.manual_seed(0)
    x, y = _separable_problem(128)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 4))
    seen = []
    model[1].register_forward_pre_hook(lambda module, inputs: seen.append(module.weight.dtype))
    history = fit(model, x, y, epochs=2, batch_size=32, lr=3e-3, progress=False, device="cpu",
                  mixed_precision=True)
    assert set(seen) == {torch.float32} and history.train_loss[-1] < history.train_loss[0]
