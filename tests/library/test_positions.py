"""vitcourse.positions against the pencil table and the 2D similarities."""

import math
import re

import numpy as np
import pytest

import torch

from vitcourse.positions import (cosine_similarity_grid, grid_coordinates, grid_distances,
                                 locality_contrast, similarity_by_distance, sinusoidal_positions,
                                 sinusoidal_positions_2d)


def test_table_at_width_4_by_hand():
    table = sinusoidal_positions(3, 4)
    np.testing.assert_array_equal(table[0], [0, 1, 0, 1])
    np.testing.assert_allclose(table[1], [0.841, 0.540, 0.010, 1.000], atol=5e-4)
    np.testing.assert_allclose(table[2], [0.909, -0.416, 0.020, 1.000], atol=5e-4)
    # slot pair i = 1 turns 100 times slower: 10000^(2/4) = 100
    assert table[1, 2] == pytest.approx(math.sin(1 / 100))


def test_formula_element_by_element():
    table = sinusoidal_positions(49, 64)
    assert table.shape == (49, 64)
    for pos, i in [(0, 0), (7, 3), (48, 31), (20, 16)]:
        angle = pos / 10000 ** (2 * i / 64)
        assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
        assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)


def test_every_seat_gets_its_own_row():
    table = sinusoidal_positions(49, 64)
    distances = np.linalg.norm(table[:, None] - table[None], axis=-1)
    assert (distances + np.eye(49) > 1e-3).all()


def test_2d_halves_and_similarities():
    codes = sinusoidal_positions_2d(2, 2, 8)            # p00, p01, p10, p11
    np.testing.assert_array_equal(codes[0, :4], codes[1, :4])   # same row → same first half
    np.testing.assert_array_equal(codes[0, 4:], codes[2, 4:])   # same column → same second half
    sim = codes @ codes.T
    np.testing.assert_allclose(np.diag(sim), 4.0)
    assert sim[0, 1] == pytest.approx(3.54, abs=5e-3) and sim[0, 2] == pytest.approx(3.54, abs=5e-3)
    assert sim[0, 3] == pytest.approx(3.08, abs=5e-3)


def test_2d_non_square_grid_in_reading_order():
    codes = sinusoidal_positions_2d(3, 5, 12)
    assert codes.shape == (15, 12)
    row_code, col_code = sinusoidal_positions(3, 6), sinusoidal_positions(5, 6)
    np.testing.assert_array_equal(codes[7], np.concatenate([row_code[1], col_code[2]]))  # patch 7 = (1, 2)
    np.testing.assert_array_equal(grid_coordinates(3, 5)[7], [1, 2])


@pytest.mark.parametrize("width", [5, 7, 0])
def test_odd_width_is_refused(width):
    with pytest.raises(ValueError, match=f"width must be a positive even int .*got {width}"):
        sinusoidal_positions(4, width)


@pytest.mark.parametrize("width", [6, 10, 2])
def test_2d_width_must_be_multiple_of_4(width):
    with pytest.raises(ValueError, match=f"multiple of 4 .*got {width}"):
        sinusoidal_positions_2d(2, 2, width)


def test_negative_count_is_refused():
    with pytest.raises(ValueError, match="n_positions must be a non-negative int, got -3"):
        sinusoidal_positions(-3, 4)


def test_grid_distances_count_steps_along_rows_and_columns():
    distances = grid_distances(2, 3)   # patches 0 1 2 / 3 4 5
    assert distances.shape == (6, 6) and (distances == distances.T).all()
    assert distances[0, 1] == 1 and distances[0, 3] == 1 and distances[0, 4] == 2
    assert distances[0, 5] == 3 and (np.diag(distances) == 0).all()


def test_cosine_grid_by_hand_on_a_1_by_3_grid():
    table = np.array([[1.0, 0.0], [2.0, 2.0], [0.0, 3.0]])   # lengths differ: cosine ignores them
    similarity = cosine_similarity_grid(table, 1, 3)
    assert similarity.shape == (1, 3, 1, 3)
    np.testing.assert_allclose(similarity[0, 0, 0], [1.0, math.sqrt(0.5), 0.0])
    np.testing.assert_allclose(similarity[0, 1, 0], [math.sqrt(0.5), 1.0, math.sqrt(0.5)])
    np.testing.assert_allclose(similarity_by_distance(similarity)[1:], [math.sqrt(0.5), 0.0])
    assert np.isnan(similarity_by_distance(similarity)[0])


def test_cosine_grid_matches_the_2d_code_dot_products():
    codes = sinusoidal_positions_2d(2, 2, 8)   # every row has length 2: cos = dot / 4
    similarity = cosine_similarity_grid(codes, 2, 2)
    np.testing.assert_allclose(similarity.reshape(4, 4), codes @ codes.T / 4)
    assert similarity[0, 0, 0, 1] == pytest.approx(3.54 / 4, abs=2e-3)


def test_cosine_grid_reads_a_trainable_torch_table():
    table = torch.nn.Parameter(torch.randn(49, 64))
    similarity = cosine_similarity_grid(table, 7, 7)
    assert similarity.dtype == np.float64
    np.testing.assert_allclose([similarity[r, c, r, c] for r in range(7) for c in range(7)], 1.0)
    np.testing.assert_allclose(similarity, similarity.transpose(2, 3, 0, 1))


def test_the_2d_code_is_local_and_a_random_table_is_not():
    near, far = locality_contrast(cosine_similarity_grid(sinusoidal_positions_2d(7, 7, 64), 7, 7))
    assert near == pytest.approx(0.979, abs=1e-3) and far == pytest.approx(0.814, abs=1e-3)
    by_distance = similarity_by_distance(cosine_similarity_grid(sinusoidal_positions_2d(7, 7, 64), 7, 7))
    assert (np.diff(by_distance[1:8]) < 0).all()   # the first steps away: ever less similar
    random_table = np.random.default_rng(0).normal(size=(49, 64))
    near, far = locality_contrast(cosine_similarity_grid(random_table, 7, 7))
    assert abs(near) < 0.05 and abs(far) < 0.05


@pytest.mark.parametrize("shape", [(50, 64), (1, 49, 64), (49,)])
def test_cosine_grid_refuses_a_table_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=rf"\(49, D\) for a 7 × 7 grid, got shape {re.escape(str(shape))}"):
        cosine_similarity_grid(np.ones(shape), 7, 7)


def test_cosine_grid_names_an_all_zero_position():
    table = np.ones((6, 4))
    table[4] = 0
    with pytest.raises(ValueError, match=r"position 4 \(row 1, column 1\) is all zeros"):
        cosine_similarity_grid(table, 2, 3)


@pytest.mark.parametrize("far", [1, 13, 2.5])
def test_locality_contrast_refuses_a_distance_the_grid_does_not_have(far):
    similarity = cosine_similarity_grid(sinusoidal_positions_2d(7, 7, 64), 7, 7)
    with pytest.raises(ValueError, match=rf"far must be an int from 2 to 12 .* 7 × 7 grid, got {far}"):
        locality_contrast(similarity, far=far)


def test_similarity_summaries_refuse_a_flat_matrix():
    with pytest.raises(ValueError, match=r"\(n_rows, n_cols, n_rows, n_cols\) .* got shape \(49, 49\)"):
        similarity_by_distance(np.eye(49))
