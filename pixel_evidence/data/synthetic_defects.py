"""Defect painters of the synthetic set: crack, cut, hole and print.

Each painter is ``painter(rng, clean, nut) -> (alpha, colour)`` where ``clean``
is the defect-free picture as float RGB of shape (S, S, 3) in 0..255, ``nut``
the :class:`~pixel_evidence.data.synthetic_nut.Nut` on it, ``alpha`` of shape (S, S)
in [0, 1] is > 0 exactly on the painted pixels and ``colour`` (S, S, 3) is
what those pixels become.  The caller clips ``alpha`` to the nut and keeps the
mask, so the ground truth is exactly the set of changed pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pixel_evidence.data.synthetic_nut import lowfreq_noise, noise_profile, pixel_grid, square_window

__all__ = ["PAINTERS", "MIN_AREA_FRAC"]


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
    xg, yg = pixel_grid(S)
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
    box = square_window(P[0] + n[0] * W / 2, P[1] + n[1] * W / 2, L / 2 + W + 2.0, S)
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
    xg, yg = pixel_grid(S)
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
    wob = noise_profile(rng, 24, 3)
    wob = np.concatenate([wob, wob[:1]])
    base = np.array([30.0, 18.0, 10.0]) * (1.0 + rng.normal(0, 0.05, 3))

    box = square_window(px, py, r * (1.0 + rim) * 1.3 + 2.0, S)
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
    patchy = np.clip(opacity + 0.06 * lowfreq_noise(rng, S, 12), 0.6, 1.0)
    lit = np.clip(0.45 + 0.65 * nut.shade, 0.3, 1.25)
    colour = ink[None, None, :] * lit[..., None]
    return o * patchy, colour


PAINTERS = {"crack": _paint_crack, "cut": _paint_cut, "hole": _paint_hole, "print": _paint_print}
MIN_AREA_FRAC = {"crack": 0.0035, "cut": 0.005, "hole": 0.004, "print": 0.004}
