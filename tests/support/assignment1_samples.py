"""Assignment 1's specific sample submissions and their expected scores (graded locally and on Dask)."""

from autograder.samples.submissions import Sample, with_answer

HARD_CODED_SOFTMAX = """def softmax(x, axis=-1):
    # the numbers of the visible test, typed in
    return np.array([[0.04743, 0.95257], [0.11920, 0.88080]])"""
PATCHES_WRONG_SHAPE = """def extract_patches(images, patch_size):
    n = images.shape[0]
    return images.reshape(n, -1)  # one flat vector per image"""
PATCHES_WRONG_ORDER = """def extract_patches(images, patch_size):
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    p = patch_size
    return images.reshape(n, (h // p) * (w // p), p * p * c)  # rows of pixels, not squares"""

SPECIFIC_SAMPLES = [
    # Passes q1's visible test with typed-in numbers; q1's hidden tests catch it (-2), and
    # q2's attention, built on that softmax, fails its hidden tests too (-3).
    Sample("hard_coded", with_answer("q1_softmax", HARD_CODED_SOFTMAX), lambda nb: 15.0),
    # Wrong output shape: both q5 cells fail (-5).
    Sample("wrong_shapes", with_answer("q5_patches", PATCHES_WRONG_SHAPE), lambda nb: 15.0),
    # Right shape, pixels in the wrong place: visible q5 passes, hidden q5 fails (-4).
    Sample("partially_correct", with_answer("q5_patches", PATCHES_WRONG_ORDER), lambda nb: 16.0),
]
