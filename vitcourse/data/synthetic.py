"""Offline stand-ins: deterministic synthetic look-alikes of Fashion-MNIST and CIFAR-10.

They exist so the book and the assignments execute where the real files cannot be fetched
(CI, the book build here).  They are *not* the real data: results on them are labelled
``synthetic-fashion`` / ``synthetic-cifar`` and say nothing about accuracy on the real sets.
``synthetic-cifar-clutter`` is a variant of ``synthetic-cifar`` (same ten object drawers) whose
backgrounds are a class-free multicoloured clutter, for the chapter on what a ViT attends to.

Design goals:

* same dtypes and per-image shapes as the real sets, ten balanced classes;
* learnable but not trivial: each class is a family of shapes drawn with random position,
  size, tilt, proportions, brightness, texture and noise, and some classes are drawn from
  overlapping recipes (T-shirt / shirt / pullover / coat; sandal / sneaker / ankle boot;
  cat / dog; automobile / truck; deer / horse), so no single pixel decides the class and a
  small model lands clearly below 100 %;
* deterministic: images come in chunks of 1,000, each drawn from its own local NumPy
  generator seeded by (data set, split, chunk index), independent of any global RNG.  So
  the quick subset is exactly the first images of the full-size set.

Everything is vectorised over a batch: shapes are rendered as soft masks (values in [0, 1],
about one pixel of anti-aliased edge) on per-image transformed coordinate grids.
"""

from __future__ import annotations

import functools

import numpy as np

CHUNK = 1_000
SEED = 20_240_611
_KIND_IDS = {"synthetic-fashion": 1, "synthetic-cifar": 2, "synthetic-cifar-clutter": 3}
_SPLIT_IDS = {"train": 0, "test": 1}
CIFAR_KINDS = ("synthetic-cifar", "synthetic-cifar-clutter")  # the CIFAR-10 stand-ins, with object masks


class _Canvas:
    """Per-image coordinates and soft shape primitives for a batch of ``n`` images.

    ``u`` (across, left → right) and ``v`` (down, top → bottom) are (n, S, S) float32 grids
    spanning about [-1, 1] after a random shift, scale, stretch and tilt per image.  Every
    shape parameter may be a scalar or an (n, 1, 1) array (one value per image).
    """

    def __init__(self, rng: np.random.Generator, n: int, size: int, *, shift: float,
                 scale: tuple[float, float], tilt: float):
        self.rng, self.n = rng, n
        grid = ((np.arange(size, dtype=np.float32) + 0.5) / (size / 2) - 1.0)
        x, y = grid[None, None, :], grid[None, :, None]
        dx, dy = self.uniform(-shift, shift), self.uniform(-shift, shift)
        zoom = self.uniform(*scale)
        stretch = self.uniform(0.88, 1.12)
        angle = self.uniform(-tilt, tilt)
        cos, sin = np.cos(angle), np.sin(angle)
        self.u = ((x - dx) * cos + (y - dy) * sin) / (zoom * stretch)
        self.v = (-(x - dx) * sin + (y - dy) * cos) / zoom
        self.soft = 1.0 / (size / 2) / zoom  # about one pixel, in shape units

    def uniform(self, low, high) -> np.ndarray:
        """(n, 1, 1) float32 values drawn uniformly from [low, high)."""
        return self.rng.uniform(low, high, (self.n, 1, 1)).astype(np.float32)

    def chance(self, p: float) -> np.ndarray:
        """(n, 1, 1) float32 of 1.0 with probability ``p``, else 0.0."""
        return (self.rng.random((self.n, 1, 1)) < p).astype(np.float32)

    def _edge(self, inside_distance) -> np.ndarray:
        """Soft step: 1 well inside (positive distance), 0 well outside, linear across a pixel."""
        return np.clip(inside_distance / self.soft + 0.5, 0.0, 1.0)

    def box(self, left, right, top, bottom) -> np.ndarray:
        u, v = self.u, self.v
        return self._edge(np.minimum(np.minimum(u - left, right - u), np.minimum(v - top, bottom - v)))

    def trapezoid(self, top, bottom, half_top, half_bottom, centre=0.0) -> np.ndarray:
        """Axis-aligned trapezoid: half-width ``half_top`` at ``top`` growing linearly to ``half_bottom``."""
        frac = np.clip((self.v - top) / (bottom - top), 0.0, 1.0)
        half = half_top + (half_bottom - half_top) * frac
        return self._edge(np.minimum(half - np.abs(self.u - centre),
                                     np.minimum(self.v - top, bottom - self.v)))

    def ellipse(self, cx, cy, rx, ry) -> np.ndarray:
        r = np.sqrt(((self.u - cx) / rx) ** 2 + ((self.v - cy) / ry) ** 2)
        return self._edge((1.0 - r) * np.minimum(rx, ry))

    def ring(self, cx, cy, rx, ry, thickness) -> np.ndarray:
        return np.clip(self.ellipse(cx, cy, rx, ry)
                       - self.ellipse(cx, cy, rx - thickness, ry - thickness), 0.0, 1.0)

    def stroke(self, ax, ay, bx, by, half_width) -> np.ndarray:
        """A thick segment (capsule) from (ax, ay) to (bx, by)."""
        px, py = self.u - ax, self.v - ay
        sx, sy = bx - ax, by - ay
        t = np.clip((px * sx + py * sy) / (sx * sx + sy * sy + 1e-6), 0.0, 1.0)
        return self._edge(half_width - np.hypot(px - t * sx, py - t * sy))

    def stripes(self, frequency, angle, phase) -> np.ndarray:
        """Sinusoidal stripes in [0, 1]: a fabric / fur texture."""
        along = self.u * np.cos(angle) + self.v * np.sin(angle)
        return 0.5 + 0.5 * np.sin(frequency * along + phase)


def union(*masks: np.ndarray) -> np.ndarray:
    return functools.reduce(np.maximum, masks)


def cut(mask: np.ndarray, hole: np.ndarray) -> np.ndarray:
    return mask * (1.0 - hole)


# ---------------------------------------------------------------------------------------
# synthetic-fashion: ten garment silhouettes on a black background, 28 × 28 grey.
# Each drawer returns (mask, detail): the silhouette, and darker lines drawn on top of it.

def _upper_body(c: _Canvas, *, width, bottom, sleeve, sleeve_drop, sleeve_width):
    """Torso plus two sleeves hanging from the shoulders at a downward slant."""
    top = c.uniform(-0.72, -0.6)
    torso = c.trapezoid(top, bottom, width, width * c.uniform(0.9, 1.1))
    shoulder_x = width * 0.85
    end_x = shoulder_x + sleeve * np.sqrt(1.0 - sleeve_drop ** 2)
    end_y = top + 0.1 + sleeve * sleeve_drop
    sleeves = union(c.stroke(shoulder_x, top + 0.1, end_x, end_y, sleeve_width),
                    c.stroke(-shoulder_x, top + 0.1, -end_x, end_y, sleeve_width))
    neck = c.ellipse(0.0, top, c.uniform(0.1, 0.2), c.uniform(0.06, 0.14))
    return cut(union(torso, sleeves), neck), top


def _tshirt(c: _Canvas):
    mask, _ = _upper_body(c, width=c.uniform(0.36, 0.5), bottom=c.uniform(0.62, 0.82),
                          sleeve=c.uniform(0.22, 0.5), sleeve_drop=c.uniform(0.25, 0.6),
                          sleeve_width=c.uniform(0.13, 0.2))
    return mask, 0.0


def _pullover(c: _Canvas):
    mask, _ = _upper_body(c, width=c.uniform(0.32, 0.46), bottom=c.uniform(0.55, 0.8),
                          sleeve=c.uniform(0.7, 1.05), sleeve_drop=c.uniform(0.6, 0.92),
                          sleeve_width=c.uniform(0.11, 0.17))
    rib = c.box(-1.0, 1.0, 0.5, 0.6) * c.chance(0.5)
    return mask, 0.25 * rib


def _coat(c: _Canvas):
    mask, top = _upper_body(c, width=c.uniform(0.38, 0.5), bottom=c.uniform(0.72, 0.95),
                            sleeve=c.uniform(0.8, 1.1), sleeve_drop=c.uniform(0.65, 0.95),
                            sleeve_width=c.uniform(0.12, 0.18))
    opening = c.stroke(0.0, top + 0.15, 0.0, 1.0, c.uniform(0.02, 0.05)) * c.uniform(0.3, 0.8)
    lapels = union(c.stroke(0.0, top + 0.45, 0.2, top, 0.03), c.stroke(0.0, top + 0.45, -0.2, top, 0.03))
    return mask, np.maximum(opening, 0.5 * lapels * c.chance(0.7))


def _shirt(c: _Canvas):
    mask, top = _upper_body(c, width=c.uniform(0.34, 0.47), bottom=c.uniform(0.6, 0.85),
                            sleeve=c.uniform(0.3, 1.05), sleeve_drop=c.uniform(0.35, 0.9),
                            sleeve_width=c.uniform(0.11, 0.18))
    placket = c.stroke(0.0, top + 0.15, 0.0, 1.0, 0.025) * c.uniform(0.0, 0.45)
    collar = union(c.stroke(0.0, top + 0.15, 0.17, top - 0.02, 0.04),
                   c.stroke(0.0, top + 0.15, -0.17, top - 0.02, 0.04))
    checks = c.stripes(c.uniform(8, 16), 0.0, c.uniform(0, 6)) * c.stripes(
        c.uniform(8, 16), np.pi / 2, c.uniform(0, 6)) * c.chance(0.5)
    return mask, np.maximum(np.maximum(placket, 0.45 * collar), 0.4 * checks)


def _trouser(c: _Canvas):
    waist = c.uniform(0.26, 0.38)
    top, bottom = c.uniform(-0.9, -0.75), c.uniform(0.8, 0.95)
    leg = c.uniform(0.1, 0.17)
    flare = c.uniform(-0.02, 0.12)
    hip_x = waist - leg
    legs = union(c.stroke(hip_x, top + 0.2, hip_x + flare, bottom, leg),
                 c.stroke(-hip_x, top + 0.2, -hip_x - flare, bottom, leg))
    return union(c.box(-waist, waist, top, top + 0.3), legs), 0.0


def _dress(c: _Canvas):
    top, bottom = c.uniform(-0.8, -0.65), c.uniform(0.75, 0.95)
    body = c.trapezoid(top, bottom, c.uniform(0.15, 0.27), c.uniform(0.42, 0.72))
    sleeves = union(c.stroke(0.18, top + 0.08, 0.42, top + 0.25, 0.1),
                    c.stroke(-0.18, top + 0.08, -0.42, top + 0.25, 0.1)) * c.chance(0.35)
    belt = c.box(-1.0, 1.0, -0.15, -0.08) * c.chance(0.4)
    return union(body, sleeves), 0.4 * belt


def _sandal(c: _Canvas):
    sole_y = c.uniform(0.3, 0.5)
    sole = c.stroke(-0.8, sole_y + 0.05, 0.8, sole_y, c.uniform(0.05, 0.09))
    heel = c.box(0.45, 0.8, sole_y - c.uniform(0.0, 0.35), sole_y) * c.chance(0.5)
    straps = [c.stroke(x0, sole_y, x0 + c.uniform(0.1, 0.4), sole_y - c.uniform(0.3, 0.6),
                       c.uniform(0.035, 0.06)) * c.chance(0.75)
              for x0 in (-0.6, -0.25, 0.1, 0.45)]
    ankle = c.stroke(0.2, sole_y - 0.55, 0.7, sole_y - 0.6, 0.05) * c.chance(0.35)
    return union(sole, heel, ankle, *straps) * c.uniform(0.6, 1.0), 0.0


def _sneaker(c: _Canvas):
    bottom = c.uniform(0.35, 0.55)
    height = c.uniform(0.5, 0.75)
    body = c.ellipse(0.0, bottom, c.uniform(0.75, 0.9), height)
    heel_rise = c.uniform(0.0, 0.3)  # the collar sits higher at the heel (right)
    collar_line = bottom - height * 0.7 - heel_rise * (c.u + 1.0) / 2.0
    shoe = body * np.clip((c.v - collar_line) / c.soft + 0.5, 0, 1) * (c.v < bottom + 0.02)
    sole = c.box(-0.9, 0.9, bottom - 0.1, bottom + 0.02)
    laces = c.stripes(c.uniform(18, 28), 0.8, c.uniform(0, 6)) * c.box(-0.45, 0.05, -1, bottom - 0.25)
    return union(shoe, sole), 0.45 * laces * c.chance(0.7)


def _boot(c: _Canvas):
    bottom = c.uniform(0.4, 0.6)
    shaft_top = bottom - c.uniform(0.55, 1.25)  # short shafts look like high-top sneakers
    shaft = c.box(c.uniform(-0.05, 0.15), c.uniform(0.55, 0.75), shaft_top, bottom)
    foot = c.ellipse(-0.15, bottom - 0.05, c.uniform(0.65, 0.8), c.uniform(0.25, 0.38)) * (c.v < bottom)
    heel = c.box(0.4, 0.75, bottom - 0.05, bottom + 0.08)
    zip_line = c.stroke(0.35, shaft_top + 0.1, 0.35, bottom - 0.2, 0.025) * c.chance(0.5)
    return union(shaft, foot, heel), 0.5 * zip_line


def _bag(c: _Canvas):
    half = c.uniform(0.5, 0.8)
    top, bottom = c.uniform(-0.35, -0.05), c.uniform(0.6, 0.85)
    body = c.trapezoid(top, bottom, half * c.uniform(0.8, 1.0), half)
    handle = c.ring(0.0, top, c.uniform(0.22, 0.45), c.uniform(0.25, 0.55), c.uniform(0.06, 0.11))
    flap = c.stroke(-half, top + 0.25, half, top + 0.25, 0.025) * c.chance(0.5)
    return union(body, handle * (c.v < top) * c.chance(0.8)), 0.5 * flap


_FASHION_DRAWERS = (_tshirt, _trouser, _pullover, _dress, _coat,
                    _sandal, _shirt, _sneaker, _bag, _boot)


def _render_fashion(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """(n,) labels → (n, 28, 28) uint8 garment images."""
    images = np.zeros((len(labels), 28, 28), dtype=np.float32)
    for label, draw in enumerate(_FASHION_DRAWERS):
        rows = np.flatnonzero(labels == label)
        if rows.size == 0:
            continue
        c = _Canvas(rng, rows.size, 28, shift=0.16, scale=(0.75, 1.02), tilt=0.12)
        mask, detail = draw(c)
        fabric = 1.0 - c.uniform(0.0, 0.35) * c.stripes(c.uniform(4, 14), c.uniform(0, np.pi),
                                                       c.uniform(0, 6))
        shade = 1.0 + c.uniform(-0.25, 0.25) * c.v  # light from above or below
        tone = c.uniform(0.35, 1.0) * fabric * shade * (1.0 - detail)
        images[rows] = mask * tone
    images += 0.05 * rng.standard_normal(images.shape, dtype=np.float32)
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# synthetic-cifar: ten coloured objects on coloured, textured backgrounds, 32 × 32 RGB.
# Each drawer returns (mask, dark): the object, and a darker part (wheels, eyes, ...).

def _car_body(c: _Canvas, length, height):
    body = c.box(-length, length, 0.05, 0.05 + height)
    wheels = union(c.ellipse(-length * 0.6, 0.05 + height, 0.17, 0.17),
                   c.ellipse(length * 0.6, 0.05 + height, 0.17, 0.17))
    return body, wheels


def _airplane(c):
    span = c.uniform(0.45, 0.8)
    sweep = c.uniform(-0.1, 0.3)
    body = c.stroke(-0.75, 0.0, 0.75, 0.0, c.uniform(0.07, 0.12))
    wings = c.stroke(0.05 + sweep, -span, -0.05, span, c.uniform(0.07, 0.12))
    tail = c.stroke(-0.65, 0.0, -0.8, -0.3, 0.07)
    return union(body, wings, tail), 0.0


def _automobile(c):
    body, wheels = _car_body(c, c.uniform(0.6, 0.8), c.uniform(0.25, 0.35))
    cabin = c.trapezoid(c.uniform(-0.35, -0.25), 0.06, c.uniform(0.25, 0.4), c.uniform(0.45, 0.6))
    return union(body, cabin, wheels), wheels


def _bird(c):
    body = c.ellipse(0.0, 0.05, c.uniform(0.3, 0.42), c.uniform(0.18, 0.26))
    head = c.ellipse(0.35, -0.18, 0.14, 0.14)
    beak = c.stroke(0.45, -0.18, 0.62, -0.12, 0.04)
    tail = c.stroke(-0.3, 0.05, -0.7, c.uniform(-0.1, 0.3), 0.08)
    wing = c.stroke(-0.1, 0.0, c.uniform(-0.3, 0.2), c.uniform(-0.6, -0.2), 0.09) * c.chance(0.6)
    return union(body, head, beak, tail, wing), c.ellipse(0.4, -0.22, 0.04, 0.04)


def _face(c, radius):
    head = c.ellipse(0.0, 0.05, radius, radius * c.uniform(0.85, 1.05))
    eyes = union(c.ellipse(-0.13, -0.02, 0.06, 0.05), c.ellipse(0.13, -0.02, 0.06, 0.05))
    nose = c.ellipse(0.0, 0.15, 0.06, 0.04)
    return head, union(eyes, nose)


def _cat(c):
    head, dark = _face(c, c.uniform(0.36, 0.5))
    ears = union(c.trapezoid(-0.55, -0.15, 0.0, 0.14, centre=-0.22),
                 c.trapezoid(-0.55, -0.15, 0.0, 0.14, centre=0.22))
    return union(head, ears), dark


def _deer(c):
    body = c.ellipse(-0.05, 0.1, c.uniform(0.38, 0.5), c.uniform(0.16, 0.22))
    legs = union(*(c.stroke(x, 0.15, x + c.uniform(-0.05, 0.05), 0.75, 0.05) for x in (-0.35, -0.2, 0.15, 0.3)))
    neck = c.stroke(0.3, 0.0, 0.45, -0.4, 0.09)
    head = c.ellipse(0.5, -0.45, 0.14, 0.1)
    antlers = union(c.stroke(0.45, -0.5, 0.35, -0.85, 0.03), c.stroke(0.5, -0.5, 0.65, -0.85, 0.03)) * c.chance(0.6)
    return union(body, legs, neck, head, antlers), 0.0


def _dog(c):
    head, dark = _face(c, c.uniform(0.34, 0.46))
    ears = union(c.ellipse(-0.33, 0.05, 0.1, c.uniform(0.18, 0.28)),
                 c.ellipse(0.33, 0.05, 0.1, c.uniform(0.18, 0.28)))
    snout = c.ellipse(0.0, 0.22, 0.16, 0.11)
    return union(head, snout, ears), np.maximum(dark, 0.6 * ears)


def _frog(c):
    body = c.ellipse(0.0, 0.2, c.uniform(0.45, 0.6), c.uniform(0.22, 0.3))
    eyes = union(c.ellipse(-0.25, -0.08, 0.11, 0.1), c.ellipse(0.25, -0.08, 0.11, 0.1))
    legs = union(c.stroke(-0.45, 0.3, -0.75, 0.5, 0.08), c.stroke(0.45, 0.3, 0.75, 0.5, 0.08))
    spots = (c.stripes(c.uniform(12, 20), 0.5, 0) * c.stripes(c.uniform(12, 20), 2.0, 1.0)) > 0.6
    return union(body, eyes, legs), 0.5 * spots * c.chance(0.6)


def _horse(c):
    body = c.ellipse(-0.05, 0.05, c.uniform(0.42, 0.52), c.uniform(0.17, 0.23))
    legs = union(*(c.stroke(x, 0.1, x, 0.85, 0.055) for x in (-0.35, -0.2, 0.15, 0.3)))
    neck = c.stroke(0.3, -0.05, 0.55, -0.55, 0.12)
    head = c.stroke(0.55, -0.55, 0.75, -0.35, 0.08)
    tail = c.stroke(-0.5, 0.0, -0.65, 0.45, 0.05)
    return union(body, legs, neck, head, tail), 0.0


def _ship(c):
    hull = c.trapezoid(0.1, c.uniform(0.3, 0.4), c.uniform(0.7, 0.9), c.uniform(0.45, 0.65))
    cabin = c.box(c.uniform(-0.4, -0.1), c.uniform(0.1, 0.4), c.uniform(-0.35, -0.1), 0.11)
    mast = c.stroke(0.0, 0.0, 0.0, c.uniform(-0.8, -0.5), 0.035) * c.chance(0.6)
    return union(hull, cabin, mast), 0.0


def _truck(c):
    body, wheels = _car_body(c, c.uniform(0.7, 0.85), c.uniform(0.3, 0.4))
    cargo = c.box(-0.85, c.uniform(0.15, 0.35), c.uniform(-0.6, -0.3), 0.1)
    cab = c.box(0.3, 0.8, c.uniform(-0.35, -0.15), 0.1)
    return union(body, cargo, cab, wheels), wheels


_CIFAR_DRAWERS = (_airplane, _automobile, _bird, _cat, _deer, _dog, _frog, _horse, _ship, _truck)

# Typical object colour and background colour (RGB in [0, 1]) per class; both are jittered,
# and a third of the backgrounds are drawn at random so colour alone cannot decide.
_SKY, _GRASS, _ROAD, _ROOM, _WATER = (0.55, 0.7, 0.9), (0.3, 0.55, 0.25), (0.45, 0.45, 0.45), (0.6, 0.5, 0.4), (0.2, 0.35, 0.6)
_CIFAR_COLOURS = (
    ((0.85, 0.85, 0.88), _SKY), ((0.7, 0.15, 0.15), _ROAD), ((0.5, 0.35, 0.2), _SKY),
    ((0.65, 0.5, 0.3), _ROOM), ((0.55, 0.38, 0.2), _GRASS), ((0.5, 0.35, 0.2), _ROOM),
    ((0.3, 0.6, 0.2), _GRASS), ((0.4, 0.25, 0.15), _GRASS), ((0.8, 0.8, 0.8), _WATER),
    ((0.3, 0.35, 0.7), _ROAD),
)


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int = 5) -> np.ndarray:
    """(n, size, size, 3) low-frequency noise: a (cells × cells) grid, bilinearly upsampled."""
    coarse = rng.standard_normal((n, cells, cells, 3), dtype=np.float32)
    pos = np.linspace(0, cells - 1, size)
    lo = np.minimum(pos.astype(int), cells - 2)
    weights = np.zeros((size, cells), dtype=np.float32)
    weights[np.arange(size), lo] = 1 - (pos - lo)
    weights[np.arange(size), lo + 1] = pos - lo
    rows = np.einsum("yi,nijc->nyjc", weights, coarse)        # upsample down the image
    return np.einsum("nyjc,xj->nyxc", rows, weights)           # then across


def _jitter(rng, base, n, spread):
    """(n, 1, 1, 3) colours around ``base`` (3,) with per-channel uniform jitter."""
    colour = np.asarray(base, dtype=np.float32) + rng.uniform(-spread, spread, (n, 3))
    return np.clip(colour, 0.0, 1.0).astype(np.float32)[:, None, None, :]


def _render_cifar(rng: np.random.Generator, labels: np.ndarray, masks: np.ndarray | None = None, *,
                  clutter: bool = False) -> np.ndarray:
    """(n,) labels → (n, 32, 32, 3) uint8 object-on-background images.

    ``masks``, if given, an (n, 32, 32) float32 array, receives each image's object mask (the
    alpha the object was blended with, in [0, 1]). Filling it draws nothing from ``rng``, so
    the images are the same either way.

    ``clutter=True`` draws ``synthetic-cifar-clutter``: larger objects placed further off
    centre, on a fine multicoloured clutter (16 × 16 noise cells around mid-grey) that has the
    same statistics in every image and every class.  So a background carries neither the class
    nor anything particular to its image: the one thing two crops of an image share is the
    object, as on a photograph, and not the background's colour, as on ``synthetic-cifar``.
    """
    images = np.zeros((len(labels), 32, 32, 3), dtype=np.float32)
    for label, draw in enumerate(_CIFAR_DRAWERS):
        rows = np.flatnonzero(labels == label)
        n = rows.size
        if n == 0:
            continue
        if clutter:
            c = _Canvas(rng, n, 32, shift=0.35, scale=(0.95, 1.3), tilt=0.25)
        else:
            c = _Canvas(rng, n, 32, shift=0.2, scale=(0.7, 1.05), tilt=0.25)
        if label not in (0, 2):  # only fliers are seen from any side; mirror the rest half the time
            c.u = c.u * np.where(c.chance(0.5) > 0, -1.0, 1.0).astype(np.float32)
        mask, dark = draw(c)
        object_base, background_base = _CIFAR_COLOURS[label]
        colour = _jitter(rng, object_base, n, 0.25)
        if clutter:
            texture = 0.12 * _smooth_noise(rng, n, 32)
            background = 0.5 + 0.3 * _smooth_noise(rng, n, 32, cells=16)
        else:
            background = _jitter(rng, background_base, n, 0.2)
            random_background = rng.random((n, 1, 1, 1)) < 1 / 3
            background = np.where(random_background, rng.random((n, 1, 1, 3)).astype(np.float32), background)
            texture = 0.12 * _smooth_noise(rng, n, 32)
        obj = colour * (1.0 - 0.6 * np.expand_dims(np.asarray(dark, dtype=np.float32), -1))
        alpha = mask[..., None]
        if masks is not None:
            masks[rows] = np.broadcast_to(mask, (n, 32, 32))
        images[rows] = alpha * (obj + 0.5 * texture) + (1 - alpha) * (background + texture)
    images += 0.04 * rng.standard_normal(images.shape, dtype=np.float32)
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------

_RENDERERS = {
    "synthetic-fashion": _render_fashion,
    "synthetic-cifar": _render_cifar,
    "synthetic-cifar-clutter": functools.partial(_render_cifar, clutter=True),
}


def _chunk_start(kind: str, split: str, index: int) -> tuple[np.random.Generator, np.ndarray]:
    """Chunk ``index``'s own generator, and its (CHUNK,) int64 labels drawn from it: exactly
    100 of each class in shuffled order. The generator is then ready to render the images."""
    rng = np.random.default_rng([SEED, _KIND_IDS[kind], _SPLIT_IDS[split], index])
    return rng, rng.permutation(np.arange(CHUNK) % 10).astype(np.int64)


def _chunk(kind: str, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ``index`` of a split: (CHUNK, ...) uint8 images and (CHUNK,) int64 labels."""
    rng, labels = _chunk_start(kind, split, index)
    return _RENDERERS[kind](rng, labels), labels


@functools.lru_cache(maxsize=8)
def synthetic_split(kind: str, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``size`` images and labels of a stand-in split, cached per process.

    Args:
        kind: ``"synthetic-fashion"`` ((size, 28, 28) images), ``"synthetic-cifar"`` or
            ``"synthetic-cifar-clutter"`` ((size, 32, 32, 3) images).
        split: ``"train"`` or ``"test"`` (different images, same recipe).
        size: a positive multiple of 1,000.

    Returns:
        Read-only uint8 images and int64 labels (shared by every caller; copy to modify).
    """
    if kind not in _RENDERERS:
        raise ValueError(f"unknown stand-in {kind!r}; choose one of {', '.join(_RENDERERS)}.")
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if not isinstance(size, int) or size <= 0 or size % CHUNK:
        raise ValueError(f"size must be a positive multiple of {CHUNK}, got {size!r}.")
    chunks = [_chunk(kind, split, i) for i in range(size // CHUNK)]
    images = np.concatenate([x for x, _ in chunks])
    labels = np.concatenate([y for _, y in chunks])
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=4)
def synthetic_object_masks(split: str, size: int, kind: str = "synthetic-cifar") -> np.ndarray:
    """The object masks of the first ``size`` images of a split of a CIFAR stand-in.

    Returns a read-only (size, 32, 32) float32 array in [0, 1]: for each image, how much of
    each pixel is object (1) rather than background (0), the soft edge included — the
    ground truth for "does the attention fall on the object?". Row i belongs to image i of
    ``synthetic_split(kind, split, size)`` (``kind``: ``"synthetic-cifar"`` or
    ``"synthetic-cifar-clutter"``); the images are re-rendered from the same seeds to get
    them, not changed.

    Raises:
        ValueError: for any other ``kind``, the real ``"cifar10"`` included: a photograph has no
            mask, so a chapter measures attention on the object only when ``Dataset.synthetic``.
    """
    if kind not in CIFAR_KINDS:
        real = " (a real data set: nobody drew masks for its photographs)" if kind == "cifar10" else ""
        raise ValueError(f"object masks exist for {' and '.join(map(repr, CIFAR_KINDS))}, not {kind!r}{real}: "
                         f"only the stand-ins' generator keeps each object's outline. Measure attention on "
                         f"the object only when the data is a stand-in (Dataset.synthetic is True).")
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if not isinstance(size, int) or size <= 0 or size % CHUNK:
        raise ValueError(f"size must be a positive multiple of {CHUNK}, got {size!r}.")
    parts = []
    for index in range(size // CHUNK):
        rng, labels = _chunk_start(kind, split, index)
        masks = np.zeros((CHUNK, 32, 32), dtype=np.float32)
        _RENDERERS[kind](rng, labels, masks)
        parts.append(masks)
    masks = np.concatenate(parts)
    masks.setflags(write=False)
    return masks
