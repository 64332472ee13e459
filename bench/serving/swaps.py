"""(c) N promotions under saturating concurrent load: failures, versions per response, p99 in
the swap windows vs steady state, candidate-loaded-to-serving time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.serving.setup import LABELS, pct
from bench.serving.throughput import rss_mb


@dataclass(frozen=True, slots=True)
class SwapReport:
    swaps: int
    requests: int
    failed: int
    mixed_responses: int
    steady_p99_ms: float
    swap_window_p99_ms: float
    #: p99 of requests overlapping a control window: as long as the swap window before it, placed
    #: in the middle of the steady gap after it (no build, no swap)
    control_window_p99_ms: float
    #: p99 of the swap window's requests that overlap no build (they started after the offer)
    swap_only_p99_ms: float
    build_window_p99_ms: float
    loaded_to_serving_ms_max: float
    build_s_median: float
    #: full garbage collections during the run and the longest one (they hold the GIL)
    gc_full_collections: int
    gc_full_ms_max: float
    #: malloc_trim after a swap, as the swapper does once the batcher serves the new version
    trims: int
    trim_ms_max: float
    #: resident memory before the first promotion and after the last
    rss_mb_first_swap: float
    rss_mb_last_swap: float


def run(
    base: str,
    adapters: list[Path],
    *,
    swaps: int,
    threads: int,
    clients: int,
    merge_adapters: bool = False,
    gc_freeze: bool = True,
    gap_s: float = 0.5,
    trim: str = "auto",
) -> SwapReport:
    """``merge_adapters`` and ``gc_freeze=False`` reproduce how swaps ran before versions shared
    the base and the host froze the startup objects out of the collector's walk. ``trim``: "auto"
    calls ``malloc_trim`` after a swap when the swapper would (the dropped version held
    ``RELEASE_MIN_BYTES``), "always" after every swap (as the swapper did before), "never"."""
    import gc

    from adaptd.metrics import new_metrics
    from adaptd.serving.batcher import Batcher
    from adaptd.serving.host import ModelHost, Swap, freeze_startup_objects
    from adaptd.serving.memory import release_freed_memory, worth_releasing
    from bench.serving.setup import texts

    host = ModelHost(
        base=base,
        labels=LABELS,
        threads=threads,
        max_length=128,
        merge_adapters=merge_adapters,
    )
    if gc_freeze:
        freeze_startup_objects()  # as the daemon does once started
    full_gc: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            full_gc.append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(on_gc)
    served: dict[str, float] = {}
    released: dict[str, int] = {}
    swapped = threading.Event()

    def on_swap(swap: Swap) -> None:
        served[swap.new.version] = time.perf_counter()
        released[swap.new.version] = swap.released_bytes
        swapped.set()

    batcher = Batcher(
        host, new_metrics(), max_batch=32, max_wait_ms=5.0, queue_size=4096, on_swap=on_swap
    )
    host.offer(host.build("v0", adapters[0]))
    batcher.start()
    batcher.wake()
    pool = texts(512)
    stop = threading.Event()
    records: list[tuple[float, float, int]] = []
    failures = [0]

    def client(k: int) -> None:
        i = k
        while not stop.is_set():
            chunk = [pool[i % len(pool)], pool[(i + 7) % len(pool)]]
            i += clients
            start = time.perf_counter()
            try:
                predictions = batcher.submit(chunk).result(timeout=60)
            except Exception:
                failures[0] += 1
                continue
            records.append((start, time.perf_counter(), len({p.adapter for p in predictions})))

    workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for w in workers:
        w.start()
    time.sleep(2.0)  # steady state before the first swap
    rss_start = rss_mb()
    windows: list[tuple[float, float, float]] = []  # build start, offered, served
    builds = []
    trims: list[float] = []
    try:
        for n in range(1, swaps + 1):
            version = f"v{n}"
            t_build = time.perf_counter()
            built = host.build(version, adapters[n % len(adapters)])
            builds.append(built.load_seconds)
            t_offer = time.perf_counter()
            swapped.clear()
            host.offer(built)
            batcher.wake()
            # an event, as the daemon's registry watcher waits: a polling loop here would take
            # the GIL from the batcher thousands of times a second during the swap window
            while version not in served:
                swapped.wait(1.0)
            windows.append((t_build, t_offer, served[version]))
            if trim == "always" or (trim == "auto" and worth_releasing(released[version])):
                t_trim = time.perf_counter()
                release_freed_memory()
                trims.append(time.perf_counter() - t_trim)
            time.sleep(gap_s)  # steady traffic between promotions
        rss_end = rss_mb()
    finally:  # a failed build must not leave the clients running (they are not daemon threads)
        stop.set()
        for w in workers:
            w.join()
        batcher.stop()
        gc.callbacks.remove(on_gc)

    def overlaps(r: tuple[float, float, int], a: float, b: float) -> bool:
        return r[0] <= b and r[1] >= a

    # A request overlaps a window with a probability that grows with its own latency (a slow
    # request spans more time), so "requests overlapping a swap window" are slower than
    # "requests overlapping nothing" even when the swap costs nothing. The control windows
    # select requests the same way in steady traffic: swap window vs control window is the
    # swap's own cost; vs steady it also holds that selection bias.
    controls = [
        (done + gap_s / 2, done + gap_s / 2 + (done + 0.05 - offer)) for _, offer, done in windows
    ]
    swap_lat, swap_only_lat, build_lat, steady_lat, control_lat = [], [], [], [], []
    for r in records:
        latency = r[1] - r[0]
        in_build = any(overlaps(r, b, offer) for b, offer, _ in windows)
        if any(overlaps(r, offer, done + 0.05) for _, offer, done in windows):
            swap_lat.append(latency)
            if not in_build:
                swap_only_lat.append(latency)
        elif in_build:
            build_lat.append(latency)
        else:
            steady_lat.append(latency)
            if any(overlaps(r, a, b) for a, b in controls):
                control_lat.append(latency)
    return SwapReport(
        swaps=swaps,
        requests=len(records),
        failed=failures[0],
        mixed_responses=sum(1 for r in records if r[2] != 1),
        steady_p99_ms=pct(steady_lat, 0.99) * 1000,
        swap_window_p99_ms=pct(swap_lat, 0.99) * 1000,
        control_window_p99_ms=pct(control_lat, 0.99) * 1000,
        swap_only_p99_ms=pct(swap_only_lat, 0.99) * 1000,
        build_window_p99_ms=pct(build_lat, 0.99) * 1000,
        loaded_to_serving_ms_max=max(done - offer for _, offer, done in windows) * 1000,
        build_s_median=sorted(builds)[len(builds) // 2],
        gc_full_collections=len(full_gc),
        gc_full_ms_max=max(full_gc, default=0.0) * 1000,
        trims=len(trims),
        trim_ms_max=max(trims, default=0.0) * 1000,
        rss_mb_first_swap=rss_start,
        rss_mb_last_swap=rss_end,
    )
