"""Deterministic synthetic "hazelnut" defect data set in the MVTec AD layout.

The real MVTec AD hazelnut category cannot be shipped with the project, so this
module paints a stand-in that has the same folder structure and the same kind
of pixel-accurate ground truth::

    <root>/train/good/000.png ...
    <root>/test/{crack,cut,good,hole,print}/000.png ...
    <root>/ground_truth/{crack,cut,hole,print}/000_mask.png ...

Images are RGB PNGs of ``size x size`` pixels (default 256).  Masks are
single-channel 8-bit ("L") PNGs of the same size holding only 0 (background)
and 255 (defect).  Good images have no mask.

Every picture shows one brown, striated, egg-shaped nut with a pointed tip on
a dark, slightly noisy background.  Position, rotation, size, lighting
direction, brightness and colour tone vary from image to image.  Defects are
painted on the shell:

* ``crack`` - thin, jagged, dark, branching lines;
* ``cut``   - a straight-edged slice that exposes cream-coloured flesh;
* ``hole``  - a round dark hole with a lit/shadowed rim;
* ``print`` - saturated ink letters or marker strokes.

The ground-truth mask is exactly the set of pixels the defect painter changed
(pixels outside the mask are bit-identical to the defect-free rendering), and
it is always contained in the nut's silhouette.

Determinism: every image has its own ``numpy.random.default_rng`` seeded from
``(seed, split/class code, index)``, so an image does not depend on the order
of generation or on how many other images are requested.  No global random
state is used or touched, PNGs carry no metadata, and two runs with the same
arguments produce byte-identical files (with the same Pillow/numpy build).

Importing this module has no side effects.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "GENERATOR_VERSION",
    "DEFECT_CLASSES",
    "TEST_CLASSES",
    "RenderedImage",
    "render_image",
    "generate",
    "fingerprint",
    "default_data_root",
    "ensure_default_data",
    "contact_sheet",
]

#: Bump whenever the pixels (or file layout) produced for a given seed change.
GENERATOR_VERSION = 1

#: Defect classes, in the order used for folders and the contact sheet.
DEFECT_CLASSES: tuple[str, ...] = ("crack", "cut", "hole", "print")
#: All classes that appear under ``test/`` (sorted, like MVTec AD).
TEST_CLASSES: tuple[str, ...] = ("crack", "cut", "good", "hole", "print")

# Stable integer code per (split, class); part of every image's seed.
_STREAM_CODE = {
    ("train", "good"): 1,
    ("test", "good"): 2,
    ("test", "crack"): 3,
    ("test", "cut"): 4,
    ("test", "hole"): 5,
    ("test", "print"): 6,
}

# Arguments of the default set built by ensure_default_data() (same as generate()'s defaults).
_DEFAULT_PARAMS = {"seed": 0, "n_good_train": 360, "n_good_test": 40, "n_per_defect": 80, "size": 256}

_PNG_COMPRESS_LEVEL = 1  # fast; the pictures are noisy, higher levels gain <10%
_MIN_SIZE = 32


# --------------------------------------------------------------------------
# small numeric helpers
# --------------------------------------------------------------------------


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@functools.lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each of shape (size, size)."""
    c = np.arange(size, dtype=np.float64) + 0.5
    x = np.broadcast_to(c[None, :], (size, size))
    y = np.broadcast_to(c[:, None], (size, size))
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _noise_profile(rng: np.random.Generator, n: int, smooth: int) -> np.ndarray:
    """1-D band-limited noise with unit std, length ``n``."""
    raw = rng.standard_normal(n + 2 * smooth)
    if smooth > 1:
        k = np.hanning(smooth + 2)[1:-1]
        raw = np.convolve(raw, k / k.sum(), mode="same")
    prof = raw[smooth : smooth + n]
    prof = prof - prof.mean()
    return prof / (prof.std() + 1e-9)


def _sample_profile(prof: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sample ``prof`` (spread over [-1, 1]) at ``x`` with linear interpolation."""
    grid = np.linspace(-1.0, 1.0, prof.size)
    return np.interp(x, grid, prof)


def _lowfreq_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth 2-D noise (std ~1) of shape (size, size) from a ``cells``^2 grid."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float64)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# the nut
# --------------------------------------------------------------------------


@dataclass
class _Nut:
    size: int
    cx: float
    cy: float
    a: float  # half length along the long axis (px)
    b: float  # max half width (px)
    theta: float  # long-axis angle (rad), points from base to tip
    bend: float
    egg: float
    alpha: np.ndarray  # (S,S) coverage in [0,1]
    interior: np.ndarray  # (S,S) bool, at least a few px inside the outline
    shade: np.ndarray  # (S,S) lighting multiplier on the shell
    normal: np.ndarray  # (S,S,3) unit surface normal
    light: np.ndarray  # (3,) unit light direction (x right, y down, z to viewer)
    brightness: float

    def half_width(self, t: np.ndarray | float) -> np.ndarray:
        return _half_width(np.asarray(t, dtype=np.float64), self.b, self.egg)

    def point(self, t0: float, s0: float) -> tuple[float, float]:
        """Pixel coordinates of nut-local point (t0 along, s0 across), both in [-1, 1]."""
        w = float(self.half_width(t0))
        u = t0 * self.a
        v = s0 * w + self.bend * self.a * (t0 * t0 - 1.0 / 3.0)
        c, s = np.cos(self.theta), np.sin(self.theta)
        return float(self.cx + u * c - v * s), float(self.cy + u * s + v * c)


def _half_width(t: np.ndarray, b: float, egg: float) -> np.ndarray:
    """Half width (px) of the nut outline at normalised axial position ``t``.

    The base end (t=-1) is round, the tip end (t=+1) closes almost linearly,
    which gives the pointed hazelnut tip.
    """
    tc = np.clip(t, -1.0, 1.0)
    q = 0.5 + 0.42 * _smoothstep(0.05, 1.0, tc)
    return b * np.power(np.maximum(1.0 - tc * tc, 0.0), q) * (1.0 - egg * tc)


def _nut_frame(nut_params: dict, dx: np.ndarray, dy: np.ndarray):
    """Map offsets from the nut centre to (t, v, w): axial pos, across offset, half width."""
    c, s = np.cos(nut_params["theta"]), np.sin(nut_params["theta"])
    a = nut_params["a"]
    u = dx * c + dy * s
    t = u / a
    v = -dx * s + dy * c - nut_params["bend"] * a * (np.clip(t, -1, 1) ** 2 - 1.0 / 3.0)
    w = _half_width(t, nut_params["b"], nut_params["egg"])
    w = np.where(np.abs(t) < 1.0, w, 0.0)
    # signed distance (px) to the outline, measured across the axis; beyond
    # the two ends use the distance past the end instead
    dist = np.where(np.abs(t) < 1.0, w - np.abs(v), -np.hypot((np.abs(t) - 1.0) * a, v))
    return t, v, w, dist


def _box(cx: float, cy: float, radius: float, size: int) -> tuple[slice, slice]:
    """(rows, cols) slices of the square window of half side ``radius`` around (cx, cy)."""
    x0 = max(0, int(np.floor(cx - radius)))
    x1 = min(size, int(np.ceil(cx + radius)) + 1)
    y0 = max(0, int(np.floor(cy - radius)))
    y1 = min(size, int(np.ceil(cy + radius)) + 1)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _render_clean(rng: np.random.Generator, size: int) -> tuple[np.ndarray, _Nut]:
    """Paint background + nut. Returns float RGB image (S,S,3) in 0..255 and the nut.

    All per-pixel nut work happens inside the nut's bounding window only.
    """
    S = size
    xg, yg = _pixel_grid(S)

    # ---- geometry -------------------------------------------------------
    a = S * rng.uniform(0.28, 0.35)
    b = a * rng.uniform(0.72, 0.84)
    p = {
        "a": a,
        "b": b,
        "theta": rng.uniform(0.0, 2.0 * np.pi),
        "bend": rng.uniform(-0.05, 0.05),
        "egg": rng.uniform(0.04, 0.12),
    }
    cx = S * (0.5 + rng.uniform(-0.06, 0.06))
    cy = S * (0.5 + rng.uniform(-0.06, 0.06))
    box = _box(cx, cy, 1.08 * a + 3.0, S)
    bh = box[0].stop - box[0].start
    bw = box[1].stop - box[1].start
    xb, yb = xg[box], yg[box]
    t, v, w, dist_in = _nut_frame(p, xb - cx, yb - cy)
    alpha = np.clip(dist_in + 0.5, 0.0, 1.0)
    inside = dist_in > 0.0
    s = np.where(inside, v / np.maximum(w, 1e-6), 0.0)

    # ---- lighting ---------------------------------------------------------
    az = rng.uniform(0.0, 2.0 * np.pi)
    el = rng.uniform(0.85, 1.2)
    light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    height = 0.9 * w * np.sqrt(np.clip(1.0 - s * s, 0.0, 1.0))
    gy, gx = np.gradient(height)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    nx, ny, nz = -gx / norm, -gy / norm, 1.0 / norm
    ndl = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    ndh = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0.0, 1.0)
    ambient = rng.uniform(0.34, 0.42)
    shade = ambient + (1.0 - ambient) * 0.95 * ndl
    shade *= 0.72 + 0.28 * np.sqrt(nz)  # extra darkening toward the outline
    brightness = rng.uniform(0.85, 1.12)
    shininess = rng.uniform(18.0, 34.0)
    spec = rng.uniform(0.16, 0.28) * ndh**shininess

    # ---- shell texture: streaks running from base to tip -----------------
    phi = np.arcsin(np.clip(s, -1.0, 1.0)) * (2.0 / np.pi)  # angle around long axis
    wob_f = rng.uniform(1.0, 2.5)
    wob_p = rng.uniform(0, 2 * np.pi)
    xs = phi + 0.012 * np.sin(2 * np.pi * wob_f * t + wob_p)
    fine_a = _sample_profile(_noise_profile(rng, 150, 3), xs)
    fine_b = _sample_profile(_noise_profile(rng, 150, 3), xs)
    mix = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.8, 1.6) * t + rng.uniform(0, 2 * np.pi))
    fine = fine_b + (fine_a - fine_b) * mix
    medium = _sample_profile(_noise_profile(rng, 40, 3), xs)
    broad = _sample_profile(_noise_profile(rng, 10, 2), xs)
    fade = 0.75 + 0.25 * _sample_profile(_noise_profile(rng, 16, 3), np.clip(t, -1, 1))
    blotch = _lowfreq_noise(rng, S, 7)[box]
    streak = fade * (0.55 * fine + 0.35 * medium) + 0.30 * broad + 0.18 * blotch
    m = np.clip(0.52 + 0.23 * streak, 0.0, 1.0)

    tone = 1.0 + rng.normal(0.0, 0.035, 3)
    warm = rng.uniform(-0.06, 0.06)
    tone *= np.array([1.0 + warm, 1.0, 1.0 - 1.5 * warm])
    dark = np.array([78.0, 42.0, 20.0]) * tone
    mid = np.array([136.0, 80.0, 40.0]) * tone
    light_c = np.array([184.0, 120.0, 66.0]) * tone
    col = np.empty((bh, bw, 3))
    for ch in range(3):
        col[..., ch] = np.interp(m, [0.0, 0.5, 1.0], [dark[ch], mid[ch], light_c[ch]])

    # pale, rough scar at the base and a darker pointed tip
    scar = _smoothstep(-0.80, -0.97, t) * rng.uniform(0.35, 0.7)
    scar_col = np.array([150.0, 122.0, 86.0]) * tone
    speck = 1.0 + 0.10 * rng.standard_normal((bh, bw))
    col += (scar_col[None, None, :] * speck[..., None] - col) * scar[..., None]
    tip = _smoothstep(0.80, 0.97, t) * 0.35

    grain = 1.0 + 0.035 * rng.standard_normal((bh, bw))
    nut_rgb = col * (shade * brightness * grain * (1.0 - tip))[..., None]
    nut_rgb += (spec * 255.0)[..., None] * np.array([1.0, 0.93, 0.82])

    # ---- background with a soft shadow ------------------------------------
    bg_level = rng.uniform(14.0, 30.0)
    bg_tint = np.array([1.0, 1.0 + rng.uniform(-0.04, 0.03), 1.0 + rng.uniform(-0.08, 0.04)])
    bg = bg_level + 5.0 * _lowfreq_noise(rng, S, 5) + 2.2 * rng.standard_normal((S, S))
    off = -light[:2] / max(np.linalg.norm(light[:2]), 1e-6) * S * 0.035
    sbox = _box(cx + off[0], cy + off[1], 1.08 * a + 0.03 * S + 3.0, S)
    dist2 = _nut_frame(p, xg[sbox] - cx - off[0], yg[sbox] - cy - off[1])[3]
    bg[sbox] *= 1.0 - np.clip(dist2 / (0.07 * S) + 0.35, 0.0, 1.0) * 0.6
    img = bg[..., None] * bg_tint
    img[box] += (nut_rgb - img[box]) * alpha[..., None]

    def full(arr, fill=0.0):
        out = np.full((S, S) + arr.shape[2:], fill, dtype=arr.dtype)
        out[box] = arr
        return out

    margin = max(2.0, 0.02 * S)
    nut = _Nut(
        size=S,
        cx=cx,
        cy=cy,
        a=a,
        b=b,
        theta=p["theta"],
        bend=p["bend"],
        egg=p["egg"],
        alpha=full(alpha),
        interior=full(dist_in >= margin, False),
        shade=full(shade * brightness),
        normal=full(np.stack([nx, ny, nz], axis=-1)),
        light=light,
        brightness=brightness,
    )
    return img, nut


# --------------------------------------------------------------------------
# defect painters: each returns (alpha (S,S) in [0,1], colour (S,S,3)) where
# alpha > 0 exactly on the painted pixels.  The caller clips to the nut.
# --------------------------------------------------------------------------


def _polyline(rng, start, heading, n_steps, step, jitter):
    pts = [start]
    heads = [heading]
    x, y = start
    for _ in range(n_steps):
        heading += rng.normal(0.0, 0.16)
        seg = heading + rng.normal(0.0, jitter)
        ln = step * rng.uniform(0.55, 1.35)
        x, y = x + ln * np.cos(seg), y + ln * np.sin(seg)
        pts.append((x, y))
        heads.append(heading)
    return pts, heads


def _draw_path(draw: ImageDraw.ImageDraw, pts, width: int) -> None:
    draw.line(pts, fill=255, width=width, joint="curve")
    if width > 2:
        r = width / 2.0
        for x, y in (pts[0], pts[-1]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)


def _paint_crack(rng, clean, nut):
    S = nut.size
    outer = Image.new("L", (S, S), 0)
    core = Image.new("L", (S, S), 0)
    d_out, d_core = ImageDraw.Draw(outer), ImageDraw.Draw(core)
    start = nut.point(rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5))
    w_main = max(2, int(round(S * rng.uniform(0.012, 0.019))))
    step = S * rng.uniform(0.02, 0.029)
    heading = rng.uniform(0, 2 * np.pi)
    n_arms = 2 if rng.random() < 0.75 else 1
    paths = []  # (points, width)
    for arm in range(n_arms):
        h0 = heading + arm * np.pi + rng.normal(0, 0.3)
        n = int(rng.integers(6, 11))
        pts, heads = _polyline(rng, start, h0, n, step, 0.55)
        # taper: first half full width, rest thinner
        k = n // 2 + 1
        paths.append((pts[:k + 1], w_main))
        paths.append((pts[k:], max(1, w_main - 1)))
        for _ in range(int(rng.integers(0, 3))):
            j = int(rng.integers(1, len(pts) - 1))
            side = 1.0 if rng.random() < 0.5 else -1.0
            bh = heads[j] + side * rng.uniform(0.45, 1.1)
            bpts, _ = _polyline(rng, pts[j], bh, int(rng.integers(2, 5)), step * 0.8, 0.6)
            paths.append((bpts, max(1, w_main - 1 - int(rng.integers(0, 2)))))
    for pts, wd in paths:
        _draw_path(d_out, pts, wd)
        _draw_path(d_core, pts, max(1, wd - 2))
    o = np.asarray(outer) > 0
    c = np.asarray(core) > 0
    factor = np.where(c, 0.13, 0.36)
    colour = clean * factor[..., None] + np.array([4.0, 2.0, 1.0])
    return o.astype(np.float64), colour


def _paint_cut(rng, clean, nut):
    S = nut.size
    xg, yg = _pixel_grid(S)
    P = np.array(nut.point(rng.uniform(-0.45, 0.45), rng.uniform(-0.45, 0.45)))
    ang = rng.uniform(0, 2 * np.pi)
    d = np.array([np.cos(ang), np.sin(ang)])
    n = np.array([-d[1], d[0]])
    L = S * rng.uniform(0.17, 0.28)
    W = S * rng.uniform(0.045, 0.085)
    A, B = P - d * L / 2, P + d * L / 2
    tau = np.linspace(0.0, 1.0, 33)
    bulge = np.sin(np.pi * tau) ** 0.75

    def lens(shrink: float, amp: float):
        pa = A + d * L * shrink
        ln = L * (1 - 2 * shrink)
        return [tuple(pa + d * ln * tt + n * amp * bb) for tt, bb in zip(tau, bulge)]

    # slice outline (straight knife edge A-B plus a bulging side), the exposed
    # flesh inside it, and a crisp dark line along the knife edge
    outer = Image.new("L", (S, S), 0)
    ImageDraw.Draw(outer).polygon(lens(0.0, W), fill=255)
    flesh = Image.new("L", (S, S), 0)
    ImageDraw.Draw(flesh).polygon(lens(0.05, W * rng.uniform(0.62, 0.75)), fill=255)
    edge = Image.new("L", (S, S), 0)
    ImageDraw.Draw(edge).line([tuple(A), tuple(B)], fill=255, width=max(1, S // 128))
    box = _box(P[0] + n[0] * W / 2, P[1] + n[1] * W / 2, L / 2 + W + 2.0, S)
    o = np.asarray(outer)[box] > 0
    f = (np.asarray(flesh)[box] > 0) & o
    e = (np.asarray(edge)[box] > 0) & o

    # flat cut face: even lighting, lighter near the knife edge, faint knife marks
    xb, yb = xg[box], yg[box]
    across = ((xb - A[0]) * n[0] + (yb - A[1]) * n[1]) / W
    along = ((xb - A[0]) * d[0] + (yb - A[1]) * d[1]) / L
    face_light = float(np.clip(0.95 + 0.25 * nut.light[2] * rng.uniform(0.6, 1.0), 0.8, 1.2))
    cream = np.array([236.0, 216.0, 172.0]) * (1.0 + rng.normal(0, 0.025, 3))
    marks = 0.025 * np.sin(2 * np.pi * (across * rng.uniform(5, 9) + 0.3 * along))
    f_shade = face_light * (1.04 - 0.16 * np.clip(across, 0, 1)) + marks
    f_shade = f_shade + 0.02 * rng.standard_normal(f_shade.shape)
    shell = np.array([188.0, 136.0, 84.0]) * (1.0 + rng.normal(0, 0.03, 3))
    s_shade = 0.55 + 0.45 * np.clip(nut.shade[box], 0.0, 1.3)
    c_box = np.where(
        f[..., None],
        cream * f_shade[..., None] * nut.brightness,
        shell * s_shade[..., None],
    )
    c_box = np.where(e[..., None], clean[box] * 0.3, c_box)
    alpha = np.zeros((S, S))
    alpha[box] = o
    colour = np.zeros((S, S, 3))
    colour[box] = c_box
    return alpha, colour


def _paint_hole(rng, clean, nut):
    S = nut.size
    xg, yg = _pixel_grid(S)
    px, py = nut.point(rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5))
    r = S * rng.uniform(0.032, 0.06)
    rim = rng.uniform(0.22, 0.38)
    ix = int(np.clip(px, 0, S - 1))
    iy = int(np.clip(py, 0, S - 1))
    nrm = nut.normal[iy, ix]
    tilt = np.hypot(nrm[0], nrm[1])
    e1 = nrm[:2] / tilt if tilt > 1e-6 else np.array([1.0, 0.0])
    e2 = np.array([-e1[1], e1[0]])
    squash = max(0.55, float(nrm[2]))  # foreshortening on the curved shell
    wob = _noise_profile(rng, 24, 3)
    wob = np.concatenate([wob, wob[:1]])
    base = np.array([30.0, 18.0, 10.0]) * (1.0 + rng.normal(0, 0.05, 3))

    box = _box(px, py, r * (1.0 + rim) * 1.3 + 2.0, S)
    dx, dy = xg[box] - px, yg[box] - py
    q1 = (dx * e1[0] + dy * e1[1]) / squash
    q2 = dx * e2[0] + dy * e2[1]
    ang = np.arctan2(q2, q1)
    r_ang = r * (1.0 + 0.07 * np.interp(ang, np.linspace(-np.pi, np.pi, wob.size), wob))
    rho = np.hypot(q1, q2) / r_ang
    a_box = np.clip((1.0 + rim - rho) * r + 0.5, 0.0, 1.0)

    # dark pit, a little lighter toward its wall; the wall facing away from the
    # light catches light; the rim is lit on the light side, shadowed opposite
    lxy = nut.light[:2] / max(np.linalg.norm(nut.light[:2]), 1e-6)
    cosl = (dx * lxy[0] + dy * lxy[1]) / np.maximum(np.hypot(dx, dy), 1e-6)
    rc = np.clip(rho, 0, 1)
    pit = base[None, None, :] * ((0.45 + 0.9 * rc**2) * (1.0 + 1.2 * np.clip(-cosl, 0, 1) * rc**3))[..., None]
    rim_k = (1.0 + 0.5 * cosl)[..., None]
    rim_col = clean[box] * (1.05 * rim_k) + np.array([22.0, 14.0, 6.0]) * rim_k
    alpha = np.zeros((S, S))
    alpha[box] = a_box
    colour = np.zeros((S, S, 3))
    colour[box] = np.where((rho < 1.0)[..., None], pit, rim_col)
    return alpha, colour


_INK_COLOURS = np.array(
    [
        [205.0, 20.0, 30.0],  # red
        [25.0, 60.0, 210.0],  # blue
        [20.0, 150.0, 60.0],  # green
        [185.0, 25.0, 170.0],  # magenta
        [245.0, 200.0, 20.0],  # yellow
        [10.0, 170.0, 200.0],  # cyan-blue
    ]
)


def _ring(cx: float, cy: float, rx: float, ry: float, n: int = 18):
    ang = np.linspace(0.0, 2.0 * np.pi, n + 1)
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in ang]


# Simple stroke font for the "print" defect: each glyph is a list of polylines
# in a box 0.6 wide and 1.0 high (y pointing down).  Drawn with ImageDraw lines,
# so the result does not depend on the FreeType version.
_GLYPHS: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0, 1), (0.3, 0), (0.6, 1)], [(0.12, 0.64), (0.48, 0.64)]],
    "C": [[(0.6, 0.12), (0.45, 0), (0.15, 0), (0, 0.2), (0, 0.8), (0.15, 1), (0.45, 1), (0.6, 0.88)]],
    "E": [[(0.6, 0), (0, 0), (0, 1), (0.6, 1)], [(0, 0.5), (0.45, 0.5)]],
    "F": [[(0.6, 0), (0, 0), (0, 1)], [(0, 0.5), (0.45, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(0.6, 0), (0.6, 1)], [(0, 0.5), (0.6, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(0.6, 0), (0, 0.62)], [(0.2, 0.45), (0.6, 1)]],
    "L": [[(0, 0), (0, 1), (0.6, 1)]],
    "M": [[(0, 1), (0, 0), (0.3, 0.55), (0.6, 0), (0.6, 1)]],
    "N": [[(0, 1), (0, 0), (0.6, 1), (0.6, 0)]],
    "O": [_ring(0.3, 0.5, 0.3, 0.5)],
    "P": [[(0, 1), (0, 0), (0.45, 0), (0.6, 0.12), (0.6, 0.38), (0.45, 0.5), (0, 0.5)]],
    "R": [[(0, 1), (0, 0), (0.45, 0), (0.6, 0.12), (0.6, 0.38), (0.45, 0.5), (0, 0.5)], [(0.3, 0.5), (0.6, 1)]],
    "S": [[(0.6, 0.12), (0.45, 0), (0.15, 0), (0, 0.15), (0, 0.35), (0.15, 0.48), (0.45, 0.52),
           (0.6, 0.65), (0.6, 0.85), (0.45, 1), (0.15, 1), (0, 0.88)]],
    "T": [[(0, 0), (0.6, 0)], [(0.3, 0), (0.3, 1)]],
    "U": [[(0, 0), (0, 0.8), (0.15, 1), (0.45, 1), (0.6, 0.8), (0.6, 0)]],
    "V": [[(0, 0), (0.3, 1), (0.6, 0)]],
    "X": [[(0, 0), (0.6, 1)], [(0.6, 0), (0, 1)]],
    "Y": [[(0, 0), (0.3, 0.5), (0.6, 0)], [(0.3, 0.5), (0.3, 1)]],
    "Z": [[(0, 0), (0.6, 0), (0, 1), (0.6, 1)]],
    "1": [[(0.1, 0.2), (0.35, 0), (0.35, 1)], [(0.1, 1), (0.6, 1)]],
    "2": [[(0, 0.2), (0.15, 0), (0.45, 0), (0.6, 0.18), (0.6, 0.38), (0, 1), (0.6, 1)]],
    "3": [[(0, 0.1), (0.15, 0), (0.45, 0), (0.6, 0.15), (0.6, 0.35), (0.45, 0.48), (0.2, 0.48)],
          [(0.45, 0.48), (0.6, 0.62), (0.6, 0.85), (0.45, 1), (0.15, 1), (0, 0.9)]],
    "4": [[(0.45, 1), (0.45, 0), (0, 0.7), (0.6, 0.7)]],
    "5": [[(0.6, 0), (0.05, 0), (0, 0.45), (0.4, 0.42), (0.6, 0.6), (0.6, 0.85), (0.45, 1), (0.1, 1), (0, 0.9)]],
    "7": [[(0, 0), (0.6, 0), (0.2, 1)]],
    "8": [_ring(0.3, 0.25, 0.26, 0.25), _ring(0.3, 0.74, 0.3, 0.26)],
}
_PRINT_CHARS = "".join(sorted(_GLYPHS))


def _print_layer(rng, nut) -> Image.Image:
    """Binary (0/255) layer of letters or marker strokes, positioned on the nut."""
    S = nut.size
    cx, cy = nut.point(rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35))
    layer = Image.new("L", (S, S), 0)
    draw = ImageDraw.Draw(layer)
    if rng.random() < 0.7:
        # a short stamped code, e.g. "K7" or "LOT4", roughly along the long axis
        n = int(rng.integers(2, 5))
        text = [_PRINT_CHARS[int(i)] for i in rng.integers(0, len(_PRINT_CHARS), n)]
        h = S * rng.uniform(0.085, 0.13)
        width = max(1, int(round(h * rng.uniform(0.14, 0.2))))
        adv = 0.6 + rng.uniform(0.25, 0.4)
        slant = rng.uniform(-0.15, 0.2)
        ang = nut.theta + rng.uniform(-0.5, 0.5) + (np.pi if rng.random() < 0.5 else 0.0)
        c, s = np.cos(ang), np.sin(ang)
        total = (n - 1) * adv + 0.6
        for k, ch in enumerate(text):
            for stroke in _GLYPHS[ch]:
                pts = []
                for gx, gy in stroke:
                    lx = (k * adv + gx + slant * (0.5 - gy) - total / 2) * h
                    ly = (gy - 0.5) * h
                    pts.append((cx + lx * c - ly * s, cy + lx * s + ly * c))
                _draw_path(draw, pts, width)
    else:
        # marker scribbles
        width = max(2, int(round(S * rng.uniform(0.012, 0.02))))
        for _ in range(int(rng.integers(1, 4))):
            ox, oy = cx + rng.normal(0, 0.04 * S), cy + rng.normal(0, 0.04 * S)
            ang = rng.uniform(0, 2 * np.pi)
            length = S * rng.uniform(0.12, 0.22)
            amp = S * rng.uniform(0.0, 0.03)
            cyc = rng.uniform(0.5, 2.0)
            tt = np.linspace(-0.5, 0.5, 24)
            along = tt * length
            across = amp * np.sin(2 * np.pi * cyc * tt + rng.uniform(0, 2 * np.pi))
            xs = ox + along * np.cos(ang) - across * np.sin(ang)
            ys = oy + along * np.sin(ang) + across * np.cos(ang)
            _draw_path(draw, list(zip(xs.tolist(), ys.tolist())), width)
    return layer


def _paint_print(rng, clean, nut):
    S = nut.size
    o = np.asarray(_print_layer(rng, nut)) > 0
    ink = _INK_COLOURS[int(rng.integers(0, len(_INK_COLOURS)))] * (1.0 + rng.normal(0, 0.05, 3))
    opacity = rng.uniform(0.82, 0.95)
    patchy = np.clip(opacity + 0.06 * _lowfreq_noise(rng, S, 12), 0.6, 1.0)
    lit = np.clip(0.45 + 0.65 * nut.shade, 0.3, 1.25)
    colour = ink[None, None, :] * lit[..., None]
    return o * patchy, colour


_PAINTERS = {"crack": _paint_crack, "cut": _paint_cut, "hole": _paint_hole, "print": _paint_print}
_MIN_AREA_FRAC = {"crack": 0.0035, "cut": 0.005, "hole": 0.004, "print": 0.004}


# --------------------------------------------------------------------------
# public rendering API
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedImage:
    """One rendered picture of the synthetic set, as arrays (:class:`engine.data.Sample` is an image file's record).

    Attributes:
        image: (S, S, 3) uint8 RGB, the picture that is written to disk.
        clean: (S, S, 3) uint8 RGB, the same picture before the defect was painted
            (identical to ``image`` for good images).
        mask: (S, S) uint8 in {0, 255} (defect pixels), or ``None`` for good images.
        nut: (S, S) bool, pixels fully covered by the nut.
    """

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray | None
    nut: np.ndarray


def _check_split_class(split: str, cls: str) -> int:
    try:
        return _STREAM_CODE[(split, cls)]
    except KeyError:
        raise ValueError(f"unknown split/class {split!r}/{cls!r}") from None


def render_image(split: str, cls: str, index: int, *, seed: int = 0, size: int = 256) -> RenderedImage:
    """Render image ``index`` of ``<split>/<cls>`` exactly as :func:`generate` writes it.

    Args:
        split: ``"train"`` (class must be ``"good"``) or ``"test"``.
        cls: ``"good"`` or one of :data:`DEFECT_CLASSES`.
        index: non-negative image index inside the class folder.
        seed: base seed (non-negative int), default 0.
        size: side length in pixels (>= 32), default 256.

    Returns:
        A :class:`RenderedImage` with (S, S, 3) uint8 ``image``/``clean``, (S, S) uint8
        ``mask`` (None for good) and (S, S) bool ``nut``.
    """
    code = _check_split_class(split, cls)
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be non-negative")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE}, got {size}")
    rng = np.random.default_rng([int(seed), code, int(index)])
    clean_f, nut = _render_clean(rng, size)
    clean = _to_uint8(clean_f)
    on_nut = nut.alpha >= 1.0
    if cls == "good":
        return RenderedImage(image=clean, clean=clean, mask=None, nut=on_nut)

    painter = _PAINTERS[cls]
    min_px = _MIN_AREA_FRAC[cls] * size * size
    best = None
    for _attempt in range(30):
        alpha, colour = painter(rng, clean_f, nut)
        drawn = alpha > 0
        alpha = np.where(nut.interior, alpha, 0.0)
        kept = alpha > 0
        n_kept = int(kept.sum())
        if n_kept == 0:
            continue
        if n_kept >= 0.92 * drawn.sum() and n_kept >= min_px:
            best = (n_kept, alpha, colour)  # fits on the nut and is big enough
            break
        if best is None or n_kept > best[0]:
            best = (n_kept, alpha, colour)  # fallback if no attempt fits well
    if best is None:
        raise RuntimeError(f"could not place a {cls} defect (size={size})")
    _, alpha, colour = best
    mixed = clean_f * (1.0 - alpha)[..., None] + colour * alpha[..., None]
    image = np.where((alpha > 0)[..., None], _to_uint8(mixed), clean)
    mask = np.where(alpha > 0, 255, 0).astype(np.uint8)
    return RenderedImage(image=image, clean=clean, mask=mask, nut=on_nut)


# --------------------------------------------------------------------------
# writing the data set
# --------------------------------------------------------------------------


def _save_png(arr: np.ndarray, path: Path) -> None:
    """Write ``arr`` as PNG: (S, S, 3) uint8 becomes RGB, (S, S) uint8 becomes "L"."""
    Image.fromarray(arr).save(path, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)


def _stem_width(n: int) -> int:
    return max(3, len(str(max(n - 1, 0))))


def _jobs(n_good_train: int, n_good_test: int, n_per_defect: int):
    yield from (("train", "good", i, _stem_width(n_good_train)) for i in range(n_good_train))
    for cls in TEST_CLASSES:
        n = n_good_test if cls == "good" else n_per_defect
        yield from (("test", cls, i, _stem_width(n)) for i in range(n))


def _write_set(dest: Path, seed: int, n_good_train: int, n_good_test: int, n_per_defect: int, size: int) -> None:
    (dest / "train" / "good").mkdir(parents=True)
    for cls in TEST_CLASSES:
        (dest / "test" / cls).mkdir(parents=True)
        if cls != "good":
            (dest / "ground_truth" / cls).mkdir(parents=True)

    def work(job):
        split, cls, i, width = job
        picture = render_image(split, cls, i, seed=seed, size=size)
        stem = f"{i:0{width}d}"
        _save_png(picture.image, dest / split / cls / f"{stem}.png")
        if picture.mask is not None:
            _save_png(picture.mask, dest / "ground_truth" / cls / f"{stem}_mask.png")

    jobs = list(_jobs(n_good_train, n_good_test, n_per_defect))
    workers = max(1, min(4, os.cpu_count() or 1))
    if workers == 1 or len(jobs) < 8:
        for job in jobs:
            work(job)
    else:
        # numpy and PNG encoding release the GIL for most of the work; every
        # image has its own RNG and file, so the output does not depend on order.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(work, jobs):
                pass


def _is_nonempty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return any(True for _ in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _make_staging_dir(root: Path) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    os.chmod(tmp, 0o755)
    return tmp


def _publish(tmp: Path, root: Path) -> None:
    """Atomically move the finished ``tmp`` folder to ``root``.

    Raises FileExistsError if ``root`` exists and is not an empty folder.
    """
    if root.is_dir() and not root.is_symlink() and not _is_nonempty_dir(root):
        try:
            root.rmdir()
        except OSError:
            pass  # somebody else filled it meanwhile; rename below will fail
    elif root.exists() or root.is_symlink():
        raise FileExistsError(errno.EEXIST, "target exists and is not an empty folder", str(root))
    try:
        os.rename(tmp, root)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or isinstance(exc, FileExistsError):
            raise FileExistsError(errno.EEXIST, "target appeared while generating", str(root)) from exc
        raise


def generate(
    root: Path,
    *,
    seed: int = 0,
    n_good_train: int = 360,
    n_good_test: int = 40,
    n_per_defect: int = 80,
    size: int = 256,
) -> Path:
    """Write a synthetic hazelnut data set in MVTec AD layout to ``root``.

    Files written (``NNN`` = zero-padded index, at least 3 digits)::

        root/train/good/NNN.png                       n_good_train RGB images
        root/test/good/NNN.png                        n_good_test RGB images
        root/test/{crack,cut,hole,print}/NNN.png      n_per_defect RGB images each
        root/ground_truth/{crack,cut,hole,print}/NNN_mask.png   one "L" mask per defect image

    Images are (size, size) RGB; masks are (size, size) 8-bit with values {0, 255}.
    Defaults: seed 0, 360 train-good, 40 test-good, 80 per defect class, 256 px
    (720 images in total).

    The set is built in a hidden temporary sibling folder and renamed to
    ``root`` only when complete, so ``root`` is never left half-written.

    Raises:
        FileExistsError: ``root`` exists and is not an empty folder.
        ValueError: bad counts, seed or size.
    """
    root = Path(root).expanduser()
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE}, got {size}")
    if min(n_good_train, n_good_test, n_per_defect) < 0:
        raise ValueError("image counts must be non-negative")
    if root.is_symlink() or (root.exists() and (not root.is_dir() or _is_nonempty_dir(root))):
        raise FileExistsError(
            errno.EEXIST,
            "refusing to generate: target exists and is not an empty folder (delete it or pick another root)",
            str(root),
        )
    tmp = _make_staging_dir(root)
    try:
        _write_set(tmp, seed, n_good_train, n_good_test, n_per_defect, size)
        _publish(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def fingerprint(root: Path) -> str:
    """SHA-256 hex digest over all ``*.png`` files below ``root``.

    Files are visited in sorted order of their POSIX relative path; for each the
    relative path (UTF-8), a NUL byte, the file length (8 bytes, big-endian) and
    the file bytes are hashed.  Other files are ignored.
    """
    root = Path(root)
    h = hashlib.sha256()
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.png") if p.is_file())
    for rel, path in files:
        data = path.read_bytes()
        h.update(rel.encode("utf-8"))
        h.update(b"\0")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def default_data_root() -> Path:
    """Cache folder for the default set.

    ``$PIXEL_EVIDENCE_CACHE/synthetic-hazelnut-v{GENERATOR_VERSION}`` if that
    variable is set, else ``$XDG_CACHE_HOME/pixel-evidence/...`` (when set to an
    absolute path), else ``~/.cache/pixel-evidence/...``.
    """
    name = f"synthetic-hazelnut-v{GENERATOR_VERSION}"
    env = os.environ.get("PIXEL_EVIDENCE_CACHE")
    if env:
        return Path(env).expanduser() / name
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pixel-evidence" / name


def ensure_default_data(root: Path | None = None) -> Path:
    """Return ``root`` (default :func:`default_data_root`), generating the default set if needed.

    If ``root`` already holds a data set it is returned untouched.  Otherwise the
    default set (seed 0, default counts and size) is written to a unique
    temporary sibling and renamed into place; if another process finished first,
    this process's copy is discarded and the existing one is used.
    """
    root = Path(root).expanduser() if root is not None else default_data_root()
    if not _is_nonempty_dir(root):
        tmp = _make_staging_dir(root)
        try:
            _write_set(tmp, **_DEFAULT_PARAMS)
            _publish(tmp, root)
        except FileExistsError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not _is_nonempty_dir(root):
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if not (root / "train" / "good").is_dir() or not (root / "test").is_dir():
        raise RuntimeError(f"{root} exists but does not look like a synthetic MVTec-style data set")
    return root


# --------------------------------------------------------------------------
# contact sheet
# --------------------------------------------------------------------------


def _label_font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except Exception:  # Pillow without FreeType: small bitmap font
        return ImageFont.load_default()


def contact_sheet(root: Path, out_png: Path, per_class: int = 4) -> Path:
    """Save a labelled grid of test images to ``out_png`` and return the path.

    One row per class in :data:`TEST_CLASSES` order (good first), ``per_class``
    images per row (the first ones by file name).  Each defect mask's outline
    (a 1-px ring just outside the mask edge) is drawn in bright cyan over the image.
    """
    root, out_png = Path(root), Path(out_png)
    order = ["good"] + [c for c in TEST_CLASSES if c != "good"]
    rows: list[tuple[str, list[Image.Image]]] = []
    tile = None
    for cls in order:
        files = sorted((root / "test" / cls).glob("*.png"))[:per_class]
        tiles = []
        for f in files:
            img = Image.open(f).convert("RGB")
            tile = tile or img.size[0]
            mpath = root / "ground_truth" / cls / f"{f.stem}_mask.png"
            if mpath.exists():
                # 1-px ring just outside the mask edge, so thin defects stay visible
                m = Image.open(mpath).convert("L")
                grown = np.asarray(m.filter(ImageFilter.MaxFilter(3)))
                ring = (grown > 0) & (np.asarray(m) == 0)
                img.paste((0, 255, 255), (0, 0), Image.fromarray(ring.astype(np.uint8) * 255))
            tiles.append(img)
        rows.append((cls, tiles))
    tile = tile or 64
    pad = max(4, tile // 32)
    label_w = max(80, tile // 2)
    font = _label_font(max(12, tile // 9))
    W = label_w + per_class * (tile + pad) + pad
    H = len(rows) * (tile + pad) + pad
    sheet = Image.new("RGB", (W, H), (240, 240, 240))
    draw = ImageDraw.Draw(sheet)
    for r, (cls, tiles) in enumerate(rows):
        y = pad + r * (tile + pad)
        draw.text((pad, y + tile // 2 - font.getbbox(cls)[3] // 2), cls, fill=(20, 20, 20), font=font)
        for c, img in enumerate(tiles):
            if img.size != (tile, tile):
                img = img.resize((tile, tile), Image.BILINEAR)
            sheet.paste(img, (label_w + pad + c * (tile + pad), y))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, format="PNG")
    return out_png
