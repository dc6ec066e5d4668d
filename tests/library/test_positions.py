"""vitcourse.positions against the pencil table and the 2D similarities."""

import math

import numpy as np
import pytest

from vitcourse.positions import grid_coordinates, sinusoidal_positions, sinusoidal_positions_2d


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
