"""vitcourse.norms against the worked strip and against torch.nn.LayerNorm / RMSNorm."""

import numpy as np
import pytest
import torch

from vitcourse.norms import layer_norm, rms_norm

STRIP = np.array([50.0, 60.0, 40.0, 30.0])


def test_worked_strip_by_hand():
    assert STRIP.mean() == 45.0
    assert ((STRIP - 45.0) ** 2).mean() == 125.0
    assert np.sqrt(125.0) == pytest.approx(11.18, abs=5e-3)
    np.testing.assert_allclose(layer_norm(STRIP), [0.45, 1.34, -0.45, -1.34], atol=5e-3)
    np.testing.assert_allclose(layer_norm(STRIP, eps=0.0), (STRIP - 45) / np.sqrt(125), rtol=1e-15)


def test_gamma_and_beta_stretch_and_shift():
    y = layer_norm(STRIP, gamma=np.full(4, 2.0), beta=np.full(4, 1.0), eps=0.0)
    np.testing.assert_allclose(y, 2 * (STRIP - 45) / np.sqrt(125) + 1)


def test_equals_torch_layer_norm():
    torch.manual_seed(0)
    ln = torch.nn.LayerNorm(64).double()
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(3, 49, 64, dtype=torch.float64) * 5 + 2
    expected = ln(x).detach().numpy()
    got = layer_norm(x.numpy(), ln.weight.detach().numpy(), ln.bias.detach().numpy(), eps=ln.eps)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_each_token_alone_batch_size_does_not_matter():
    x = np.random.default_rng(0).normal(size=(5, 8))
    np.testing.assert_allclose(layer_norm(x)[2], layer_norm(x[2:3])[0])


def test_constant_token_gives_beta_not_nan():
    beta = np.arange(4.0)
    np.testing.assert_array_equal(layer_norm(np.full((2, 4), 7.0), beta=beta), np.stack([beta, beta]))


def test_float32_stays_float32():
    assert layer_norm(STRIP.astype(np.float32)).dtype == np.float32
    assert rms_norm(STRIP.astype(np.float32)).dtype == np.float32


def test_rms_norm_equals_torch():
    torch.manual_seed(1)
    rms = torch.nn.RMSNorm(16, eps=1e-6).double()
    with torch.no_grad():
        rms.weight.normal_()
    x = torch.randn(4, 16, dtype=torch.float64)
    got = rms_norm(x.numpy(), rms.weight.detach().numpy(), eps=1e-6)
    np.testing.assert_allclose(got, rms(x).detach().numpy(), atol=1e-12)


def test_rms_norm_worked_strip():
    # mean of squares = (2500 + 3600 + 1600 + 900) / 4 = 2150
    np.testing.assert_allclose(rms_norm(STRIP, eps=0.0), STRIP / np.sqrt(2150.0))


def test_wrong_gamma_shape_is_explained():
    with pytest.raises(ValueError, match=r"gamma must be a scalar or have shape \(4,\).*got shape \(3,\)"):
        layer_norm(STRIP, gamma=np.ones(3))
    with pytest.raises(ValueError, match=r"beta must .* got shape \(2, 4\)"):
        layer_norm(STRIP, beta=np.ones((2, 4)))
