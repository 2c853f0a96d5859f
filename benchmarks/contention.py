"""Section ``contention``: a person's cold click (all three methods) while the same engine
fills its cache in the background and another session runs a slow method (RISE).

Each click clears the cache first, so it is cold; clicks alone are timed before and after
the busy round (the two bracket it, so a steady drift of the host cancels), and the ratio
busy / quiet is what competing work costs a click. The priority lock serves a click's
forwards before the next forward of the background fill or of RISE; what it cannot
remove is the forward running when the click arrives and the competing work's backward
passes, which share the CPU.
"""

from __future__ import annotations

import threading
from typing import Any

from .config import ALL, BenchConfig
from .measured_engine import defect_ids
from .timing import Clock, median, ratio


def bench_contention(engine, seed: int, cfg: BenchConfig, clock: Clock) -> dict[str, Any]:
    ids = defect_ids(engine)
    clicks = ids[: max(1, cfg.cold_images)]
    others = [i for i in ids if i not in clicks] or clicks  # RISE runs where nobody clicks

    def click_round() -> list[float]:
        times = []
        for image_id in clicks:
            engine.clear_cache()
            times.append(clock.time(lambda: engine.explain(seed, image_id, split="test", methods=list(ALL)))[0])
        return times

    click_round()  # warm-up: models loaded, explainers made
    before = click_round()

    stop = threading.Event()
    filling = threading.Event()
    fill = engine.precompute(seed, "train", list(ALL), progress=lambda done, total: filling.set(), stop=stop)
    rise_done: list[str] = []
    rise_running = threading.Event()

    def other_session() -> None:
        for image_id in others:
            if stop.is_set():
                return
            rise_running.set()
            engine.explain(seed, image_id, split="test", methods=["rise"])
            rise_done.append(image_id)

    rise = threading.Thread(target=other_session, name="other-session", daemon=True)
    rise.start()
    # states, not the clock: the fill has finished an image and RISE has started (or either ended early)
    while not filling.wait(0.1) and not fill.done():
        pass
    while not rise_running.wait(0.1) and rise.is_alive():
        pass
    busy = click_round()
    still_busy = not stop.is_set() and rise.is_alive() and not fill.done()
    stop.set()
    filled = fill.result()
    rise.join()
    after = click_round()

    quiet = (median(before) + median(after)) / 2
    return {"images": clicks, "quiet_s": quiet, "busy_s": median(busy), "ratio_busy_to_quiet": ratio(median(busy), quiet),
            "quiet_before_samples_s": before, "quiet_after_samples_s": after, "busy_samples_s": busy,
            "competing": {"fill_split": "train", "fill_images_done": filled, "rise_images_done": len(rise_done),
                          "both_ran_throughout": still_busy}}
