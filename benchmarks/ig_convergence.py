"""How Integrated Gradients' completeness gap falls with the steps, per quadrature, on the
shipped seed-42 model: the study behind the tolerance scheme (pixel_evidence/explainers/ig_path.py).

Every rule's attribution total is sum_i w_i s(alpha_i), with s = dF/dalpha = grad . (x - b)
at its nodes, so a rule's gap needs only the slopes at its nodes. Uniform grids of 2^k + 1
nodes are nested, so one grid gives the left, right and trapezoid Riemann rules (and
captum's ``riemann_trapezoid``) at every coarser power of two. Gauss-Legendre and the split
schedule (Gauss-Legendre with 3/4 of the nodes in [0, 0.1]) are evaluated at their own nodes.
The tolerance scheme runs once at a small tolerance; its refinements do not depend on the
tolerance, so its history (steps, gap, gap bound) gives the steps any larger tolerance
would have used. A record made before the bound existed gets its scheme run again.

    python -m benchmarks.ig_convergence [--images 20] [--out benchmarks/results/ig_convergence.json]
    python -m benchmarks.ig_convergence --report   # the tables and the figure from the JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 42
# Every image: Gauss-Legendre and the split schedule at 25 nodes, a uniform grid of 32
# intervals and the scheme up to SCHEME_CAP; the plotted images also at 50 nodes, on a grid of
# 64 intervals and near the baseline. (On the shared 2-core machine one gradient evaluation
# took about a second under load, which bounds what fits.)
STEPS, PLOT_STEPS = (25,), (25, 50)
SPLIT_AT, SPLIT_SHARE = 0.1, 0.75
GRID_INTERVALS = 32            # uniform grid of every image: rules at 8, 16, 32 intervals
PLOT_GRID_INTERVALS = 64       # the plotted images: up to 64 intervals (hole-005: 128, the first run's)
NEAR_BASELINE = np.linspace(0, SPLIT_AT, 51)   # the plotted images: F and its slope near the baseline
PLOT_IMAGES = ("hole-005", "crack-008")        # the two hard images the issue looked at
SCHEME_TOLERANCE, SCHEME_CAP = 0.005, 256


def split_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre with ``SPLIT_SHARE`` of ``n`` nodes on [0, SPLIT_AT], the rest on [SPLIT_AT, 1]."""
    from pixel_evidence.explainers.ig_path import gauss_legendre

    near = round(SPLIT_SHARE * n)
    (a, wa), (b, wb) = gauss_legendre(near), gauss_legendre(n - near)
    return (np.concatenate([a * SPLIT_AT, SPLIT_AT + b * (1 - SPLIT_AT)]),
            np.concatenate([wa * SPLIT_AT, wb * (1 - SPLIT_AT)]))


def grid_rules(slopes: np.ndarray) -> list[dict]:
    """Totals of the Riemann rules at every power-of-two coarsening of a uniform grid's slopes."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    intervals = len(slopes) - 1
    rows = []
    m = 8
    while m <= intervals:
        s = slopes[:: intervals // m]
        h = 1 / m
        step_sizes, alphas = approximation_parameters("riemann_trapezoid")
        assert np.allclose(alphas(m + 1), np.linspace(0, 1, m + 1))  # captum's nodes are this grid's
        rows += [{"rule": "riemann_left", "n": m, "total": h * s[:-1].sum()},
                 {"rule": "riemann_right", "n": m, "total": h * s[1:].sum()},
                 {"rule": "trapezoid", "n": m + 1, "total": h * (s.sum() - (s[0] + s[-1]) / 2)},
                 {"rule": "captum_riemann_trapezoid", "n": m + 1, "total": float(np.dot(step_sizes(m + 1), s)),
                  "weight_sum": float(np.sum(step_sizes(m + 1)))}]
        m *= 2
    return rows


def measure(n_images: int, out: Path) -> None:
    from pixel_evidence.data.synthetic import ensure_default_data
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.explainers.ig_path import gauss_legendre, integrate_to_tolerance
    from pixel_evidence.files import atomic_write_text

    from .integrated_gradients import _ig_on
    from .measured_engine import input_and_target

    engine = ExplanationEngine(ensure_default_data(), RESULTS.parent.parent / "pretrained_models", device="auto")
    defects = [i for i in engine.catalogue.image_ids("test") if engine.catalogue.sample(i).has_mask]
    step = max(1, len(defects) // n_images)
    ids = list(dict.fromkeys([*PLOT_IMAGES, *defects[::step]]))[:n_images]
    ig = _ig_on(engine, SEED)
    done = json.loads(out.read_text()) if out.is_file() else {"seed": SEED, "images": {}}
    for image_id in ids:
        old = done["images"].get(image_id)
        if old is not None and len(old["scheme_history"][0]) == 3:
            continue
        x, predicted = input_and_target(engine, SEED, image_id)
        x = x.to(engine.pool.device)
        evaluate = ig._path_evaluator(x[0], ig.black_baseline(x)[0], torch.tensor(predicted))

        def at(alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            f, contrib = evaluate(torch.as_tensor(alphas, dtype=torch.float64))
            return f.double().cpu().numpy(), contrib.double().sum(dim=(1, 2, 3)).cpu().numpy()

        if old is not None:  # only the scheme is missing its bound
            old["scheme_history"] = integrate_to_tolerance(evaluate, SCHEME_TOLERANCE, SCHEME_CAP).history
            atomic_write_text(out, json.dumps(done, indent=1) + "\n")
            print(image_id, "scheme again", flush=True)
            continue
        plotted = image_id in PLOT_IMAGES
        grid = np.linspace(0, 1, (PLOT_GRID_INTERVALS if plotted else GRID_INTERVALS) + 1)
        f_grid, s_grid = at(grid)
        change = f_grid[-1] - f_grid[0]
        rows = grid_rules(s_grid)
        for n in PLOT_STEPS if plotted else STEPS:
            a, w = gauss_legendre(n)
            rows.append({"rule": "gausslegendre", "n": n, "total": float(np.dot(w, at(a)[1]))})
            a, w = split_rule(n)
            rows.append({"rule": "split_gausslegendre", "n": n, "total": float(np.dot(w, at(a)[1]))})
        for r in rows:
            r["gap"] = abs(r.pop("total") - change) / abs(change)
        scheme = integrate_to_tolerance(evaluate, SCHEME_TOLERANCE, SCHEME_CAP)
        record = {"class": engine.catalogue.sample(image_id).cls, "target": predicted, "f_baseline": f_grid[0],
                  "f_input": f_grid[-1], "rules": rows, "scheme_history": scheme.history}
        if plotted:
            f_near, s_near = at(NEAR_BASELINE)
            order = np.argsort(np.concatenate([grid, NEAR_BASELINE]), kind="stable")
            parts = {"alpha": (grid, NEAR_BASELINE), "f": (f_grid, f_near), "slope": (s_grid, s_near)}
            record["path"] = {k: np.concatenate(v)[order].tolist() for k, v in parts.items()}
        done["images"][image_id] = json.loads(json.dumps(record, default=float))
        atomic_write_text(out, json.dumps(done, indent=1) + "\n")  # after every image: a stopped run resumes
        print(image_id, "done", flush=True)


def steps_for(history: list, tolerance: float, times: int = 2) -> tuple[int, float, bool]:
    """(steps, gap, converged) of the tolerance scheme at ``tolerance`` from a run's history:
    it stops once the gap is within the tolerance at ``times`` refinements in a row, the initial grid not counted (the
    engine's rule is 2; 1 shows what stopping at the first such refinement would give)."""
    for i in range(times, len(history)):  # entry 0 is the initial grid: only refinements confirm
        if all(h[1] <= tolerance for h in history[i + 1 - times: i + 1]):
            return history[i][0], history[i][1], True
    return history[-1][0], history[-1][1], False


def report(data: dict, figure: Path) -> str:
    """Markdown tables (see ``report_tables``), and the figure drawn to ``figure``."""
    _figure(data, figure)
    return report_tables(data)


def report_tables(data: dict) -> str:
    """Markdown tables: gap spread per rule and steps; the scheme's cost per tolerance."""
    images = data["images"]
    table: dict[tuple[str, int], list[float]] = {}
    for rec in images.values():
        for r in rec["rules"]:
            table.setdefault((r["rule"], r["n"]), []).append(r["gap"])
    lines = [f"{len(images)} test images of seed {data['seed']}; "
             "relative gap |sum(attr) - (F(x) - F(b))| / |F(x) - F(b)|",
             "", "| rule | steps | images | median | p90 | max |", "|---|---|---|---|---|---|"]
    for (rule, n), gaps in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if len(gaps) == len(images):
            g = np.array(gaps)
            lines.append(f"| {rule} | {n} | {len(g)} | {np.median(g):.3f} | {np.percentile(g, 90):.3f} | "
                         f"{g.max():.3f} |")
    lines += ["", f"| tolerance scheme at | stop when within | steps median | p90 | max | converged (cap {SCHEME_CAP}) "
              "| gap median | p90 | max |", "|---|---|---|---|---|---|---|---|---|"]
    for tol in (0.1, 0.05, 0.03, 0.02, 0.01):
        for times in (1, 2):
            res = [steps_for(rec["scheme_history"], tol, times) for rec in images.values()]
            st, gp = np.array([r[0] for r in res]), np.array([r[1] for r in res])
            lines.append(f"| {tol:g} | {'once' if times == 1 else 'twice in a row'} | {np.median(st):.0f} | "
                         f"{np.percentile(st, 90):.0f} | {st.max():.0f} | {sum(r[2] for r in res)}/{len(res)} | "
                         f"{np.median(gp):.3f} | {np.percentile(gp, 90):.3f} | {gp.max():.3f} |")
    for image_id, rec in images.items():
        if "path" in rec:
            lines += ["", f"{image_id}: " + ", ".join(f"{r['rule']} {r['n']}: {r['gap']:.3f}" for r in rec["rules"])
                      + "; scheme (steps: gap, bound): "
                      + ", ".join(f"{n}: {g:.3f}, {b:.3f}" for n, g, b in rec["scheme_history"])]
    return "\n".join(lines)


def _figure(data: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plotted = {k: v for k, v in data["images"].items() if "path" in v}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for image_id, rec in plotted.items():
        p = rec["path"]
        line, = axes[0].plot(p["alpha"], p["f"], label=image_id)
        axes[1].plot(p["alpha"], p["slope"], color=line.get_color(), lw=0.8, label=image_id)
    axes[0].set(xscale="symlog", xlabel="alpha (symlog, linear below 0.01)", ylabel="F = target logit",
                title="score along the path")
    axes[0].set_xscale("symlog", linthresh=0.01)
    axes[1].set_xscale("symlog", linthresh=0.01)
    axes[1].set(xlabel="alpha (symlog)", ylabel="dF/dalpha = grad . (x - b)", title="slope along the path")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    table: dict[str, dict[int, list[float]]] = {}
    for rec in data["images"].values():
        for r in rec["rules"]:
            table.setdefault(r["rule"], {}).setdefault(r["n"], []).append(r["gap"])
    n_images = len(data["images"])
    for rule, by_n in sorted(table.items()):
        ns = sorted(n for n, g in by_n.items() if len(g) == n_images)
        q = np.array([np.percentile(by_n[n], [10, 50, 90]) for n in ns])
        axes[2].errorbar(ns, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], marker="o", capsize=3,
                         label=rule)
    hist = [rec["scheme_history"] for rec in data["images"].values()]
    tols = [0.2, 0.1, 0.05, 0.02, 0.01, 0.005]
    pts = [(np.median([steps_for(h, t)[0] for h in hist]), np.median([steps_for(h, t)[1] for h in hist])) for t in tols]
    axes[2].plot(*zip(*pts), marker="s", color="black", label="tolerance scheme, tolerance 0.2 ... 0.005")
    axes[2].set(xscale="log", yscale="log", xlabel="gradient evaluations (median for the scheme)",
                ylabel="relative gap: median, bars p10-p90", title=f"gap against steps ({n_images} images)")
    axes[2].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--out", type=Path, default=RESULTS / "ig_convergence.json")
    ap.add_argument("--report", action="store_true", help="print the tables and draw the figure from --out")
    args = ap.parse_args()
    if args.report:
        print(report(json.loads(args.out.read_text()), RESULTS / "ig_convergence.png"))
    else:
        measure(args.images, args.out)


if __name__ == "__main__":
    main()
