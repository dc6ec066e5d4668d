"""The book's Sphinx extension: listings without argument checks."""

from sphinx_course import hide_argument_checks  # tools/, on the tests' path (pyproject.toml)

LISTING = '''\
def scale(x, factor):
    """Multiply x by factor."""
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    if x.ndim != 2:
        raise ValueError("x must be 2-D")
    if factor == 1:
        return x
    return x * factor
'''


def test_checks_become_one_comment_and_the_idea_stays():
    shown = hide_argument_checks(LISTING)
    assert "raise" not in shown
    assert shown.count("...  # argument checks") == 1          # two adjacent checks, one note
    assert "    if factor == 1:\n        return x\n    return x * factor" in shown
    compile(shown, "listing", "exec")                          # still Python


def test_a_listing_without_checks_is_untouched():
    code = "class A:\n    def f(self):\n        return 1\n"
    assert hide_argument_checks(code) == code
    assert hide_argument_checks("not python (") == "not python ("
