"""What each speed-up of the engine gained: cold ``explain`` (all three methods) with the
optimisations switched on one after another, all timed in the same run.

    python benchmarks/ablation.py [--images 3] [--out benchmarks/results] [--models DIR] [--data DIR]

Steps, cumulative:

0. the engine as it was: Grad-CAM and Saliency through captum, each with its own forward
   and backward; Integrated Gradients as one batch of all steps, with captum's
   convergence delta (two extra forwards) plus a forward for the score gap; default
   memory layout, BatchNorm as separate layers;
1. Grad-CAM and Saliency read one shared forward/backward;
2. IG's score gap and delta from one forward of the two end points;
3. channels-last weights and inputs;
4. BatchNorm folded into the convolutions;
5. IG steps in chunks (the engine's default on this device) instead of one batch;
6. the prediction read from Grad-CAM and Saliency's shared pass (no forward of its own),
   and IG's end points from the prediction's scores and a once-per-network black-image
   forward (the engine as it is).

Writes ``ablation.json`` and ``ablation.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from captum.attr import IntegratedGradients as CaptumIG  # noqa: E402
from captum.attr import LayerAttribution, LayerGradCam  # noqa: E402
from captum.attr import Saliency as CaptumSaliency  # noqa: E402

from benchmarks.config import DEFAULT_OUT  # noqa: E402
from benchmarks.report import machine_info, machine_line  # noqa: E402
from pixel_evidence.engine.explain import load_engine  # noqa: E402
from pixel_evidence.explainers.base import Attribution, Explainer  # noqa: E402
from pixel_evidence.explainers.gradcam import GradCAM  # noqa: E402
from pixel_evidence.explainers.integrated_gradients import IntegratedGradients  # noqa: E402
from pixel_evidence.explainers.saliency import Saliency  # noqa: E402
from pixel_evidence.models import fold_batchnorm  # noqa: E402
from pixel_evidence.run_folders import writable  # noqa: E402

# ---------------------------------------------------------------- the engine's earlier explainers

class CaptumGradCAM(Explainer):
    key = "gradcam"  # stands in for the registered method: its label and costs

    def _attribute(self, inputs, target):
        cam = LayerGradCam(self.classifier, self.layer).attribute(inputs, target=target, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")
        return Attribution(cam[:, 0])


class CaptumSaliencyMap(Explainer):
    key = "saliency"

    def _attribute(self, inputs, target):
        return Attribution(CaptumSaliency(self.classifier).attribute(inputs, target=target, abs=True).amax(dim=1))


class CaptumDeltaIG(IntegratedGradients):
    """IG as before: captum's convergence delta (its own end-point forwards) plus the gap forward."""

    needs_scores = False

    def _attribute(self, inputs, target):
        n_steps = int(self.params["n_steps"])
        baseline = self.black_baseline(inputs)
        attr, delta = CaptumIG(self.classifier).attribute(
            inputs, baselines=baseline, target=target, n_steps=n_steps, method=self.params["method"],
            internal_batch_size=self.chunk_size(len(inputs), inputs.device), return_convergence_delta=True)
        with torch.no_grad():
            scores = self.classifier(torch.cat([inputs, baseline])).gather(1, target.repeat(2)[:, None])[:, 0]
        gap = scores[: len(inputs)] - scores[len(inputs):]
        return Attribution(attr.abs().sum(dim=1), {"delta": delta.detach(),
                                                   "relative_delta": (delta.abs() / gap.abs()).detach()})


class EndPointForwardIG(IntegratedGradients):
    """IG as before step 6: the gap from one forward of both end points on every call."""

    needs_scores = False

    def _attribute(self, inputs, target):
        baseline = self.black_baseline(inputs)
        attr = CaptumIG(self.classifier).attribute(
            inputs, baselines=baseline, target=target, n_steps=int(self.params["n_steps"]),
            method=self.params["method"], internal_batch_size=self.chunk_size(len(inputs), inputs.device)).detach()
        with torch.no_grad():
            scores = self.classifier(torch.cat([inputs, baseline])).gather(1, target.repeat(2)[:, None])[:, 0]
        gap = scores[: len(inputs)] - scores[len(inputs):]
        delta = attr.sum(dim=(1, 2, 3)) - gap
        return Attribution(attr.abs().sum(dim=1), {"delta": delta, "relative_delta": delta.abs() / gap.abs()})


# ---------------------------------------------------------------- configurations

def _prepare(fold: bool, channels_last: bool):
    def prepare(net, device):
        net.eval()
        if fold:
            fold_batchnorm(net)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        net.to(memory_format=fmt)
        net.input_memory_format = fmt
        return net
    return prepare


def _step(label: str, **changes) -> None:
    """Add one configuration: the previous step's with ``changes``."""
    STEPS.append((label, {**(STEPS[-1][1] if STEPS else {}), **changes}))


STEPS: list[tuple[str, dict]] = []
_step("0 engine before: captum GC + SM, IG one batch + captum delta", gc=CaptumGradCAM, sm=CaptumSaliencyMap,
      ig=CaptumDeltaIG, fold=False, cl=False, one_batch=True, fuse=False)
_step("1 + GC and SM from one shared pass", gc=GradCAM, sm=Saliency)
_step("2 + IG gap and delta from one forward", ig=EndPointForwardIG)
_step("3 + channels-last", cl=True)
_step("4 + BatchNorm folded", fold=True)
_step("5 + IG in chunks (engine default)", one_batch=False)
_step("6 + prediction from the shared pass, IG end points reused (the engine)", ig=IntegratedGradients, fuse=True)


def engine_options(spec: dict) -> dict:
    """The engine's options for one configuration: its explainers, how the network is prepared,
    and whether the prediction shares the gradient pass."""
    return {"explainer_classes": {cls.key: cls for cls in (spec["gc"], spec["sm"], spec["ig"])},
            "prepare": _prepare(spec["fold"], spec["cl"]), "share_prediction_pass": spec["fuse"],
            "method_params": {"ig": {"internal_batch_size": 25}} if spec["one_batch"] else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--write-shipped", action="store_true", help="allow --out to be the shipped benchmarks/results/")
    p.add_argument("--data")
    p.add_argument("--models")
    p.add_argument("--seed", type=int)
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    engines = []
    for label, spec in STEPS:
        eng = load_engine(args.data, args.models, device="auto", **engine_options(spec))
        seed = args.seed if args.seed is not None else eng.pool.seeds[0]
        eng.pool.network(seed)
        engines.append((label, eng))
    ids = [i for i in eng.catalogue.image_ids("test") if eng.catalogue.sample(i).has_mask][: args.images]
    times: dict[str, list[float]] = {label: [] for label, _ in engines}
    for rep, image_id in enumerate([ids[0]] + ids):  # the first round warms every configuration up
        for label, eng in engines:
            eng.clear_cache()
            t0 = time.perf_counter()
            eng.explain(seed, image_id, split="test")
            t = time.perf_counter() - t0
            if rep:
                times[label].append(t)
    rows, prev = [], None
    for label, _ in engines:
        med = statistics.median(times[label])
        rows.append({"step": label, "cold_all_s": med, "samples_s": times[label],
                     "gain_vs_previous": (prev / med) if prev else None})
        prev = med
    machine = machine_info(engines[0][1].pool.device)
    result = {"machine": machine, "seed": seed, "images": ids, "rows": rows,
              "total_gain": rows[0]["cold_all_s"] / rows[-1]["cold_all_s"]}
    out = writable(args.out, write_shipped=args.write_shipped, option="--out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# What each engine optimisation gained (cold `explain`, all three methods)", "",
             f"Machine: {machine_line(machine)}. Seed {seed}; median over {len(ids)} images.", "",
             "| step | seconds | gain over the previous step |", "|---|---|---|"]
    for r in rows:
        gain = f"{r['gain_vs_previous']:.2f}x" if r["gain_vs_previous"] else "—"
        lines.append(f"| {r['step']} | {r['cold_all_s']:.3f} | {gain} |")
    lines += ["", f"All steps together: {result['total_gain']:.2f}x.", ""]
    (out / "ablation.md").write_text("\n".join(lines))
    print("\n".join(lines))
    for _, eng in engines:
        eng.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
