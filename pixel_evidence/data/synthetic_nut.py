"""The defect-free picture of the synthetic set: one hazelnut on a dark background.

:func:`render_nut` paints a brown, striated, egg-shaped nut with a pointed tip
on a dark, slightly noisy background, and returns the picture with a
:class:`Nut` that describes its geometry and lighting for the defect painters
(:mod:`pixel_evidence.data.synthetic_defects`).  Every random choice is drawn from the
generator passed in, in a fixed order, so the pixels depend only on its seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["Nut", "render_nut", "pixel_grid", "noise_profile", "lowfreq_noise", "square_window"]


# --------------------------------------------------------------------------
# small numeric helpers
# --------------------------------------------------------------------------


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@functools.lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each of shape (size, size)."""
    c = np.arange(size, dtype=np.float64) + 0.5
    x = np.broadcast_to(c[None, :], (size, size))
    y = np.broadcast_to(c[:, None], (size, size))
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def noise_profile(rng: np.random.Generator, n: int, smooth: int) -> np.ndarray:
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


def lowfreq_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth 2-D noise (std ~1) of shape (size, size) from a ``cells``^2 grid."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float64)


# --------------------------------------------------------------------------
# the nut
# --------------------------------------------------------------------------


@dataclass
class Nut:
    """The nut :func:`render_nut` painted: its geometry (px, rad) and per-pixel maps of shape (S, S)."""

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


def square_window(cx: float, cy: float, radius: float, size: int) -> tuple[slice, slice]:
    """(rows, cols) slices of the square window of half side ``radius`` around (cx, cy)."""
    x0 = max(0, int(np.floor(cx - radius)))
    x1 = min(size, int(np.ceil(cx + radius)) + 1)
    y0 = max(0, int(np.floor(cy - radius)))
    y1 = min(size, int(np.ceil(cy + radius)) + 1)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def render_nut(rng: np.random.Generator, size: int) -> tuple[np.ndarray, Nut]:
    """Paint background + nut. Returns float RGB image (S,S,3) in 0..255 and the nut.

    All per-pixel nut work happens inside the nut's bounding window only.
    """
    S = size
    xg, yg = pixel_grid(S)

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
    box = square_window(cx, cy, 1.08 * a + 3.0, S)
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
    fine_a = _sample_profile(noise_profile(rng, 150, 3), xs)
    fine_b = _sample_profile(noise_profile(rng, 150, 3), xs)
    mix = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.8, 1.6) * t + rng.uniform(0, 2 * np.pi))
    fine = fine_b + (fine_a - fine_b) * mix
    medium = _sample_profile(noise_profile(rng, 40, 3), xs)
    broad = _sample_profile(noise_profile(rng, 10, 2), xs)
    fade = 0.75 + 0.25 * _sample_profile(noise_profile(rng, 16, 3), np.clip(t, -1, 1))
    blotch = lowfreq_noise(rng, S, 7)[box]
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
    bg = bg_level + 5.0 * lowfreq_noise(rng, S, 5) + 2.2 * rng.standard_normal((S, S))
    off = -light[:2] / max(np.linalg.norm(light[:2]), 1e-6) * S * 0.035
    sbox = square_window(cx + off[0], cy + off[1], 1.08 * a + 0.03 * S + 3.0, S)
    dist2 = _nut_frame(p, xg[sbox] - cx - off[0], yg[sbox] - cy - off[1])[3]
    bg[sbox] *= 1.0 - np.clip(dist2 / (0.07 * S) + 0.35, 0.0, 1.0) * 0.6
    img = bg[..., None] * bg_tint
    img[box] += (nut_rgb - img[box]) * alpha[..., None]

    def full(arr, fill=0.0):
        out = np.full((S, S) + arr.shape[2:], fill, dtype=arr.dtype)
        out[box] = arr
        return out

    margin = max(2.0, 0.02 * S)
    nut = Nut(
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
