"""The benchmark's report: the machine it ran on, the targets checked, and the two files
written, ``benchmark.json`` (every number, raw samples included) and ``benchmark.md``."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixel_evidence.files import atomic_write_text
from pixel_evidence.methods import METHODS

from .config import ALL
from .throughput import mean_run
from .timing import ratio

# Targets of the issue, as (section path, comparison, limit).
SERVER_RSS_LIMIT_MB = 2.5 * 1024  # one memory budget for the server, with 10 sessions and in the soak

TARGETS = {
    "cold_speedup_vs_original": ("cold.all.speedup_vs_original", ">=", 2.0),
    "cold_ratio_to_floor": ("cold.all.ratio_to_floor", "<=", 1.15),
    "warm_p95_ms": ("warm.p95_ms", "<=", 50.0),
    "click_under_load_ratio": ("contention.ratio_busy_to_quiet", "<=", 1.5),
    "evaluation_ratio_4x_1x": ("evaluation.ratio_4x_1x", "<=", 4.4),
    "dashboard_peak_rss_10_sessions_mb": ("dashboard.rss.sessions_10_peak_mb", "<=", SERVER_RSS_LIMIT_MB),
    "soak_peak_rss_mb": ("dashboard.soak.peak_rss_mb", "<=", SERVER_RSS_LIMIT_MB),
    # a fresh server, cold disk cache: about one model load and one image's maps (issue's 3-5 s)
    "first_view_request_to_tko_s": ("dashboard.first_view.page_request_to_tko_s", "<=", 5.0),
    "sweep_overhead_share": ("sweep.overhead.share", "<=", 0.05),
}

# Every key the JSON must carry (a smoke test checks them).
REQUIRED_KEYS = {
    "": ["machine", "config", "model", "cold", "warm", "contention", "evaluation", "training", "dashboard", "ig_accuracy",
         "methods", "targets", "notes", "seconds_total"],
    "machine": ["cpu_model", "logical_cpus", "physical_cores", "torch_version", "captum_version", "python",
                "device", "gpu", "torch_threads"],
    "model": ["source", "seed", "image_size", "backbone", "note"],
    "cold": ["images", *ALL, "all"],
    "cold.all": ["engine_s", "original_s", "floor_s", "speedup_vs_original", "ratio_to_floor",
                 "ratio_of_medians_to_floor", "engine_samples_s",
                 "original_samples_s", "floor_samples_s"],
    "warm": ["requests", "p50_ms", "p95_ms", "max_ms"],
    "evaluation": ["base_images", "runs", "ratio_4x_1x", "methods", "batch_size"],
    "training": ["images_per_s", "steps", "batch_size", "image_size", "freeze_blocks", "channels_last"],
    "dashboard": ["status", "widget_change", "rss", "note"],
    "ig_accuracy": ["images", "rows", "default", "best_per_steps", "cheapest_within"],
    "ig_chunks": ["steps", "rows", "engine_chunk"],
    "methods": ["images", "rows"],
}


def machine_info(device: torch.device) -> dict[str, Any]:
    """The machine, the library versions and the load: the report's ``machine`` block."""
    cpu_model, physical = platform.processor() or "unknown", None
    try:
        text = Path("/proc/cpuinfo").read_text()
        names = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
        if names:
            cpu_model = names[0]
        cores = {(ln.split(":", 1)[1].strip()) for ln in text.splitlines() if ln.startswith("cpu cores")}
        sockets = {ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("physical id")}
        if cores:
            physical = int(next(iter(cores))) * max(1, len(sockets))
    except OSError:
        pass
    try:
        import captum

        captum_version = captum.__version__
    except Exception:  # noqa: BLE001
        captum_version = "missing"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu_model": cpu_model, "logical_cpus": os.cpu_count(), "physical_cores": physical,
            "torch_version": torch.__version__, "captum_version": captum_version,
            "python": platform.python_version(), "platform": platform.platform(), "device": str(device),
            "gpu": gpu, "torch_threads": torch.get_num_threads(), "load_average_at_start": load_average(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_line(m: dict[str, Any]) -> str:
    """The machine block as the one line that heads a report."""
    cores = f"{m['logical_cpus']} logical CPUs" + (f" ({m['physical_cores']} cores)" if m["physical_cores"] else "")
    gpu = f", GPU {m['gpu']}" if m["gpu"] else ", no GPU"
    omp = f", OMP_WAIT_POLICY={m['omp_wait_policy']}" if m.get("omp_wait_policy", "default") != "default" else ""
    return (f"{m['cpu_model']}, {cores}{gpu}; torch {m['torch_version']} ({m['torch_threads']} threads{omp}), "
            f"captum {m['captum_version']}, Python {m['python']}; device {m['device']}")


def _lookup(result: dict, path: str) -> Any:
    """The value at a dotted ``path`` such as ``cold.all.ratio_to_floor``, or None."""
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_targets(result: dict) -> dict[str, Any]:
    """Each target's value, limit and whether it is met (None when its section did not run)."""
    out = {}
    for name, (path, op, limit) in TARGETS.items():
        value = _lookup(result, path)
        if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
            out[name] = {"value": None, "limit": limit, "op": op, "met": None}
            continue
        met = value >= limit if op == ">=" else value <= limit
        out[name] = {"value": value, "limit": limit, "op": op, "met": bool(met)}
    return out


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, numpy scalars as numbers, paths as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return json_safe(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def _number(v: Any, digits: int = 3, unit: str = "") -> str:
    """A table cell: ``v`` with ``digits`` decimals and ``unit``, or a dash when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}{unit}"


def markdown(result: dict) -> str:
    """``benchmark.md``: the machine, one table per section that ran, the targets and the notes."""
    m = result["machine"]
    model = result["model"]
    lines = ["# pixel-evidence benchmark", "",
             f"Machine: {machine_line(m)}.", "",
             f"Load average (1, 5, 15 min) at start {m.get('load_average_at_start')}, at end "
             f"{m.get('load_average_at_end')} (the benchmark's own threads account for up to "
             f"{m['torch_threads']}; more means other work shared the CPU).", "",
             f"Model: seed {model['seed']} ({model['source']}), {model['backbone']}, {model['image_size']} px."
             + (f" Note: {model['note']}" if model["note"] else ""), ""]
    carried = result.get("carried_over") or {}
    if carried:
        lines += ["Sections kept from earlier runs (`--update` ran the others): " + "; ".join(
            f"`{name}` (run {c.get('date') or 'on an earlier date'}, load average at its start "
            f"{c.get('load_average_at_start')})" for name, c in carried.items()) + ".", ""]
    cold = result.get("cold") or {}
    if cold.get("all"):
        lines += ["## Cold latency per image (s, median)", "",
                  "| methods | engine | (a) original | (b) floor | speed-up vs (a) | engine / (b), paired | "
                  "floor, one IG batch | floor, unprepared network |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, label in (*((k, METHODS[k].label) for k in ALL), ("all", "all three")):
            r = cold[key]
            lines.append(f"| {label} | {_number(r['engine_s'])} | {_number(r['original_s'])} | {_number(r['floor_s'])} | "
                         f"{_number(r['speedup_vs_original'], 2, 'x')} | {_number(r['ratio_to_floor'], 2, 'x')} | "
                         f"{_number(r['floor_one_batch_s'])} | {_number(r['floor_unprepared_s'])} |")
        lines += ["", f"IG settings: {cold['ig_params']} (chunk {cold['ig_chunk']} examples); the original uses "
                      f"{cold['original_ig_steps']} steps one by one; images: {len(cold['images'])}. Engine / (b) is "
                      f"the median of per-image ratios, each engine call timed beside its floor; the ratio of the "
                      f"medians for all three is {_number(cold['all']['ratio_of_medians_to_floor'], 2, 'x')}.", ""]
        at_eval = cold.get("all_evaluation_ig")
        if at_eval:
            steps = [int(v) for v in at_eval["ig_steps"] if v == v]
            lines += [f"All three with IG at `evaluate`'s setting ({at_eval['ig_params']}): "
                      f"{_number(at_eval['engine_s'])} s (median), {_number(at_eval['ratio_to_default'], 2, 'x')} the "
                      f"call above on the same image (median of per-image ratios, timed back to back); IG steps used "
                      f"{min(steps, default=0)}–{max(steps, default=0)}. The dashboard keeps the faster fixed rule "
                      "and shows each map's gap.", ""]
    warm = result.get("warm") or {}
    if warm.get("requests"):
        lines += ["## Warm latency (cache hit, `pixel_evidence.engine.explain`, all three methods)", "",
                  "| requests | p50 | p95 | max |", "|---|---|---|---|",
                  f"| {warm['requests']} | {_number(warm['p50_ms'], 2, ' ms')} | {_number(warm['p95_ms'], 2, ' ms')} | "
                  f"{_number(warm['max_ms'], 2, ' ms')} |", ""]
    busy = result.get("contention") or {}
    if busy.get("busy_samples_s"):
        done = busy["competing"]
        lines += ["## A click under competing work (cold `explain`, all three methods)", "",
                  "| alone (before and after) | while the cache fills and another session runs RISE | busy / alone |",
                  "|---|---|---|",
                  f"| {_number(busy['quiet_s'], 3, ' s')} | {_number(busy['busy_s'], 3, ' s')} | "
                  f"{_number(busy['ratio_busy_to_quiet'], 2, 'x')} |", "",
                  f"Medians over {len(busy['images'])} images. Meanwhile the fill finished {done['fill_images_done']} "
                  f"train images and the other session {done['rise_images_done']} RISE maps; both still ran when the "
                  f"last click ended: {done['both_ran_throughout']}.", ""]
    ev = result.get("evaluation") or {}
    if ev.get("runs"):
        lines += ["## Evaluation throughput (`explain_many`, all three methods)", "",
                  "| images | seconds | images/s | time / time(1x) | CPU seconds | CPU / CPU(1x) |",
                  "|---|---|---|---|---|---|"]
        t1, c1 = mean_run(ev["runs"], 1, "seconds"), mean_run(ev["runs"], 1, "cpu_seconds")
        for i, r in enumerate(ev["runs"]):
            again = ", again" if any(p["multiplier"] == r["multiplier"] for p in ev["runs"][:i]) else ""
            lines.append(f"| {r['images']} ({r['multiplier']}x{again}) | {_number(r['seconds'], 1)} | "
                         f"{_number(r['images_per_s'], 2)} | {_number(ratio(r['seconds'], t1), 2)} | "
                         f"{_number(r['cpu_seconds'], 1)} | {_number(ratio(r['cpu_seconds'], c1), 2)} |")
        lines += ["", f"time(4x) / time(1x) = {_number(ev['ratio_4x_1x'], 2)}, CPU time(4x) / CPU time(1x) = "
                      f"{_number(ev.get('cpu_ratio_4x_1x'), 2)} (linear: 4.00). The runs go in the order listed; "
                      "1x is the mean of the first and the last run, so that a steady drift of the host's speed "
                      "cancels. On a shared virtual machine CPU time drifts with the host too.", ""]
    tr = result.get("training") or {}
    if tr.get("steps"):
        lines += ["## Training throughput", "",
                  "| images/s | batch | image size | frozen blocks | channels_last | steps timed |",
                  "|---|---|---|---|---|---|",
                  f"| {_number(tr['images_per_s'], 1)} | {tr['batch_size']} | {tr['image_size']} | {tr['freeze_blocks']} | "
                  f"{tr['channels_last']} | {tr['steps']} |", ""]
    db = result.get("dashboard") or {}
    lines += ["## Dashboard (server side)", "", f"Status: {db.get('status', '—')}. {db.get('note', '')}", ""]
    wc = db.get("widget_change") or {}
    if wc:
        lines += ["| widget change -> updated view | cold | warm p50 | warm p95 |", "|---|---|---|---|",
                  f"| {wc.get('what', '')} | {_number(wc.get('cold_s'), 3, ' s')} | {_number(wc.get('warm_p50_ms'), 1, ' ms')} | "
                  f"{_number(wc.get('warm_p95_ms'), 1, ' ms')} |", ""]
    first = db.get("first_view") or {}
    if first:
        lines += ["| first view of a fresh server | page request -> TKO in the DOM | server start -> TKO | "
                  "page request -> frame | loading state shown |", "|---|---|---|---|---|",
                  f"| {first.get('evicted_files', 0)} data and model files evicted from the page cache | "
                  f"{_number(first.get('page_request_to_tko_s'), 2, ' s')} | "
                  f"{_number(first.get('server_start_to_tko_s'), 2, ' s')} | "
                  f"{_number(first.get('page_request_to_frame_s'), 2, ' s')} | "
                  f"{'yes' if first.get('frame_showed_loading') else 'no'} |", ""]
    rss = db.get("rss") or {}
    if rss:
        lines += ["| sessions | peak RSS of the server process | RSS once they are closed |", "|---|---|---|"]
        for k in sorted((k for k in rss if k.startswith("sessions_") and k.endswith("_peak_mb")),
                        key=lambda k: int(k.split("_")[1])):
            n = k.split("_")[1]
            lines.append(f"| {n} | {_number(rss[k], 0, ' MB')} | {_number(rss.get(f'sessions_{n}_after_close_mb'), 0, ' MB')} |")
        lines.append("")
    soak = db.get("soak") or {}
    if soak:
        lines += ["| soak | pages consistent | server tracebacks | peak RSS | RSS once closed | round p50 / max |",
                  "|---|---|---|---|---|---|",
                  f"| {soak['sessions']} pages x {soak['clicks_per_session']} clicks, background fill on | "
                  f"{soak['consistent_pages']} / {soak['sessions']} | {soak['tracebacks']} | "
                  f"{_number(soak['peak_rss_mb'], 0, ' MB')} (limit {_number(soak['rss_limit_mb'], 0, ' MB')}) | "
                  f"{_number(soak['after_close_mb'], 0, ' MB')} | {_number(soak['round_p50_s'], 1, ' s')} / "
                  f"{_number(soak['round_max_s'], 1, ' s')} |", ""]
    ig = result.get("ig_accuracy") or {}
    if ig.get("rows"):
        steps = sorted({r["n_steps"] for r in ig["rows"]})
        methods = list(dict.fromkeys(r["method"] for r in ig["rows"]))
        cell = {(r["method"], r["n_steps"]): r for r in ig["rows"]}
        lines += ["## Integrated Gradients: median (p90) |delta| / |F(x) - F(black)|, and seconds per image", "",
                  "| quadrature | " + " | ".join(f"{n} steps" for n in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for meth in methods:
            # results measured with captum's trapezoid, whose weights fall short of 1 (rows from
            # before the weight sum was recorded are all captum's)
            short = any(abs(r.get("weight_sum", 0.0 if meth == "riemann_trapezoid" else 1.0) - 1.0) > 1e-6
                        for r in ig["rows"] if r["method"] == meth)
            bias = " (weights sum to (n - 1) / n)" if short else ""
            lines.append(f"| {meth}{bias} | " + " | ".join(
                f"{_number(cell[(meth, n)]['median_relative_delta'], 4)} "
                f"({_number(cell[(meth, n)].get('p90_relative_delta'), 4)}; {_number(cell[(meth, n)]['seconds'], 2)} s)"
                if (meth, n) in cell else "—" for n in steps) + " |")
        if ig.get("scheme"):
            lines += ["", "| tolerance scheme | steps median (p90) | converged | gap median (p90) | seconds |",
                      "|---|---|---|---|---|"]
            lines += [f"| {r['tolerance']:g}, cap {r['max_steps']} | {_number(r['median_steps'], 0)} "
                      f"({_number(r['p90_steps'], 0)}) | {100 * r['converged']:.0f}% | "
                      f"{_number(r['median_relative_delta'], 4)} ({_number(r['p90_relative_delta'], 4)}) | "
                      f"{_number(r['seconds'], 2)} |" for r in ig["scheme"]]
        d = ig["default"]
        lines += ["", f"Default: {d['method']}, {d['n_steps']} steps (median relative delta "
                      f"{_number(d['median_relative_delta'], 4)}). Best quadrature per step count: "
                      + ", ".join(f"{n}: {b['method']} ({_number(b['median_relative_delta'], 4)})"
                                  for n, b in ig["best_per_steps"].items()) + ". Cheapest setting within "
                      + "; ".join(f"{tol}: " + (f"{c['method']}, {c['n_steps']} steps" if c else "none")
                                  for tol, c in ig["cheapest_within"].items())
                      + f". Images: {len(ig['images'])}.", ""]
    mc = result.get("methods") or {}
    if mc.get("rows"):
        lines += ["## Every method: cold seconds per image (one `explain` call, default settings)", "",
                  "| method | seconds | marked slow in the UI | what it runs |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | {_number(r['seconds'], 2)} | {'yes' if r['slow'] else 'no'} | {r['cost_note']}"
                  + (f" (here {min(r['steps']):.0f}–{max(r['steps']):.0f} steps)" if r.get("steps") else "") + " |"
                  for r in mc["rows"]]
        lines += ["", f"Median over {len(mc['images'])} images; the image, prediction and scores are included.", ""]
    ch = result.get("ig_chunks") or {}
    if ch.get("rows"):
        lines += [f"## Integrated Gradients: seconds per image by chunk size ({ch['steps']} steps)", "",
                  "| steps per forward/backward | " + " | ".join(str(r["chunk"]) for r in ch["rows"]) + " |",
                  "|---|" + "---|" * len(ch["rows"]),
                  "| seconds | " + " | ".join(_number(r["seconds"], 3) for r in ch["rows"]) + " |", "",
                  f"The engine uses {ch['engine_chunk']} on this device.", ""]
    from .sweep import markdown_lines as sweep_lines  # Dask: only when a report is written

    lines += sweep_lines(result.get("sweep") or {})
    lines += ["## Targets", "", "| target | value | limit | met |", "|---|---|---|---|"]
    for name, t in result["targets"].items():
        met = "—" if t["met"] is None else ("yes" if t["met"] else "NO")
        lines.append(f"| {name} | {_number(t['value'], 3)} | {t['op']} {t['limit']} | {met} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    lines += ["", f"Total benchmark time: {_number(result['seconds_total'], 0, ' s')}.", ""]
    return "\n".join(lines)


def read_previous(previous: Path) -> dict[str, Any]:
    """The earlier report that ``--update`` keeps sections of; read before anything is measured,
    so that a wrong ``--out`` fails at once instead of after minutes of measuring."""
    try:
        old = json.loads(Path(previous).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--update: cannot read the earlier report {previous} ({err}); pass the --out folder "
                         "that holds it (the shipped one is benchmarks/results), or run without --update") from None
    if not isinstance(old, dict):
        raise ValueError(f"--update: {previous} is not a benchmark report; run without --update")
    return old


def carry_over(result: dict[str, Any], old: dict[str, Any], ran: tuple[str, ...], sections: tuple[str, ...]) -> dict[str, Any]:
    """``result`` with the sections it skipped taken from the earlier report ``old`` (when that
    report has them), each labelled with the run it came from, and that run's notes kept."""
    carried = {name: c for name, c in (old.get("carried_over") or {}).items() if name not in ran}
    for name in sections:
        if name in ran or not isinstance(old.get(name), dict) or old[name].get("skipped"):
            continue
        result[name] = old[name]
        if name not in carried:
            m = old.get("machine", {})
            carried[name] = {"date": m.get("date"), "load_average_at_start": m.get("load_average_at_start")}
    result["carried_over"] = carried
    result["notes"] = list(result.get("notes", [])) + [n for n in old.get("notes", []) if n not in result.get("notes", [])]
    return result


def write_reports(result: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write ``benchmark.json`` and ``benchmark.md`` into ``out``; return the JSON-safe result."""
    result = json_safe(result)
    atomic_write_text(out / "benchmark.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "benchmark.md", markdown(result))
    return result
