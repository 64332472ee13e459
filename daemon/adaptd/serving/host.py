"""The model host: the base model loaded once, and one ready-to-run model per adapter version.

Swapping is a double buffer, not an in-place weight update. A version is built off the request
path (its own module tree on the base's shared weights, the adapter attached), and only then
offered to the batcher, which switches its reference between two micro-batches. A plain LoRA
adapter, which is what adaptd trains, is attached from its tensors, each checked against the
layer it adds to; anything else (DoRA, LoRA bias, rank patterns) goes through peft's loading and
a warm-up forward. peft's ``hotswap_adapter`` was rejected on purpose: it fails on classifiers whose
head lives in ``modules_to_save`` (peft #3581) and copies tensors one by one, so a forward pass
running meanwhile could mix the weights of two versions.

Versions share every base weight (:mod:`adaptd.modeling.sharing`): the active, the offered and
the previous version together cost one base model plus three adapters, not three models. With
``model.merge_adapters`` a version is instead a full copy with LoRA merged into its weights (no
adapter cost per forward, one base model of memory per version).

The previous slot keeps the model that served before the last swap, so a rollback to it is a
reference switch too, with no load at all.
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from adaptd.adapters.layout import check_compatible
from adaptd.errors import IncompatibleAdapterError
from adaptd.modeling.base import (
    BaseModelInfo,
    base_module_shapes,
    describe,
    load_classifier,
    load_tokenizer,
)
from adaptd.modeling.device import DtypeSetting, check_dtype, resolve_device
from adaptd.modeling.lora import load_adapter, read_plain_lora
from adaptd.modeling.pooling import PoolingSetting
from adaptd.modeling.sharing import (
    attach_plain,
    owned_bytes,
    shared_copy,
    tree_copy,
    unwrap_for_serving,
)

logger = logging.getLogger(__name__)

WARMUP_TEXT = "adaptd warm-up: a short sentence to run every layer once."

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingModel:
    """One adapter version, merged and warmed up: what the batcher runs a micro-batch on."""

    version: str
    #: the torch module (merged, eval mode, on the serving device)
    model: Any
    path: str
    load_seconds: float
    #: bytes of tensors this version holds on its own (not shared with the base model)
    owned_bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Swap:
    """A switch of the serving model, as the batcher performed it between two batches."""

    new: ServingModel
    old: ServingModel | None
    #: from the offer (model built and checked) to the first batch served by it
    offered_to_serving_s: float
    #: tensor bytes of its own held by the version this swap dropped (the one that left the
    #: previous slot): what the swap gives back to the allocator
    released_bytes: int = 0


#: how much nicer than the process a build thread runs: serving threads get the cores first
BUILD_NICENESS = 10

#: build plain LoRA adapters from their tensors, without peft (False: peft's loading for every
#: adapter, as before; ``python -m bench.serving --only c --peft-build`` measures the difference)
PLAIN_BUILDS = True


def _in_build_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new thread at ``BUILD_NICENESS`` above the process's niceness, and wait.

    A build is CPU work that competes with the batcher on a small host (a deep copy of the
    module tree, peft's injection, the warm-up forward): at a lower priority the scheduler gives
    the serving threads the cores first and the build the rest. Per-thread niceness is a Linux
    property (``setpriority`` on a thread id); elsewhere the build runs at the process's
    priority. A thread of its own, because niceness cannot be lowered back without privileges
    and the caller may be a thread that serves requests later."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        if sys.platform == "linux":
            tid = threading.get_native_id()
            try:
                nice = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + BUILD_NICENESS))
            except OSError as e:  # a sandbox may forbid it: build at normal priority
                logger.debug("build thread priority not lowered: %s", e)
        try:
            result.append(fn())
        except BaseException as e:
            error.append(e)

    thread = threading.Thread(target=run, name="adaptd-build", daemon=True)
    with _short_gil_switches():
        thread.start()
        thread.join()
    if error:
        raise error[0]
    return result[0]


#: the GIL switch interval while a build runs (Python's default is 5 ms)
BUILD_SWITCH_INTERVAL_S = 0.0005

_switch_lock = threading.Lock()
_switch_users = 0
_switch_before = 0.0


@contextmanager
def _short_gil_switches() -> Iterator[None]:
    """Shorten the interpreter's GIL switch interval while a build runs, process-wide.

    A build spends tens of ms in pure Python (the module tree's deep copy, peft's injection)
    holding the GIL. The batcher gives the GIL up for every torch op and needs it back when the
    op ends; with a thread computing in Python, it gets it only after the switch interval, so at
    5 ms its forward advances about one op per 5 ms for as long as the build computes, and the
    batch in flight stalls for the whole Python phase. At 0.5 ms the two interleave: the
    batcher's ops run on one core while the build's Python runs on the other."""
    global _switch_users, _switch_before
    with _switch_lock:
        if _switch_users == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_before, BUILD_SWITCH_INTERVAL_S))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_before)


@contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run torch ops of this thread on one intra-op thread, then restore the count.

    torch's thread count is per OS thread once a thread has run a parallel op (OpenMP's
    per-thread setting), so serving threads keep theirs; the process-wide default it also sets
    is restored on exit, and :meth:`ModelHost.model_for_next_batch` pins the serving thread's
    count before its first forward so it never starts with this default."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pin_intra_op_threads(n: int) -> None:
    """Fix this thread's intra-op thread count at ``n``. torch takes a thread's count from the
    process-wide default at the thread's first parallel op (``get_num_threads`` counts as one);
    a build's warm-up lowers that default for a moment, and a serving thread starting then would
    keep one thread for good."""
    import torch

    torch.get_num_threads()
    torch.set_num_threads(n)


def freeze_startup_objects() -> int:
    """Move every object alive now out of the garbage collector's full walk; returns how many.

    A full (generation 2) collection walks every tracked object: about 430k once torch,
    transformers and the base model are loaded, 100-400 ms of CPU with the GIL held (measured on
    the 2-core box), during which no batch is formed or answered. Python starts one when the
    survivors since the last reach a quarter of that walk, so builds and served traffic set one
    off now and then, a 400 ms stall wherever it lands. Frozen, the walk covers only what was
    allocated since (bench/serving/README.md). Called once by the daemon when startup is
    complete: what exists then lives as long as the process (a frozen object that later becomes
    cyclic garbage is never collected, so this is not for code that builds hosts repeatedly,
    such as tests)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class ModelHost:
    """The base model, the tokenizer, and the active and previous serving slots.

    Building a version is thread-safe and slow (hundreds of ms); :meth:`offer` makes a built
    version the one to serve, and the batcher picks it up with :meth:`model_for_next_batch`
    between two micro-batches, so every batch runs on exactly one model object.
    """

    def __init__(
        self,
        *,
        base: str,
        labels: Sequence[str],
        pooling: PoolingSetting = "auto",
        device: str = "cpu",
        dtype: DtypeSetting = "float32",
        merge_adapters: bool = False,
        threads: int | None = None,
        max_length: int = 128,
        safetensors_only: bool = True,
    ) -> None:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        #: intra-op threads of the thread that runs the batches (see :func:`_one_intra_op_thread`)
        self.threads = torch.get_num_threads()
        #: cores this process's children compute on now (:meth:`lend_cores`)
        self._lent = 0
        self._pinned = threading.local()
        started = time.perf_counter()
        self.labels = tuple(labels)
        self.max_length = max_length
        self.device = resolve_device(device)
        check_dtype(dtype, self.device)
        self.dtype = dtype
        self.merge_adapters = merge_adapters
        self.tokenizer = load_tokenizer(base)
        # Tokenized now, before any batch: a fast tokenizer sets its padding and truncation on
        # every call, so a build's warm-up tokenizing beside the batcher could get (or give) the
        # other call's settings: a bench.serving (c) run failed a build on unpadded rows.
        self._warmup_batch = self.tokenizer(
            [WARMUP_TEXT, WARMUP_TEXT[:10]],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        # Moved to the device once: every version built from it shares these tensors there.
        self._base_model = load_classifier(
            base,
            self.labels,
            tokenizer=self.tokenizer,
            pooling=pooling,
            safetensors_only=safetensors_only,
            dtype=dtype,
        ).to(self.device)
        self.base_info: BaseModelInfo = describe(base, self._base_model, self.labels)
        self._module_shapes = base_module_shapes(base, self.labels, pooling=pooling)
        self.base_load_seconds = time.perf_counter() - started
        self._build_lock = threading.Lock()  # one build at a time (peak memory, CPU)
        self._lock = threading.Lock()  # the slots and the lent cores
        self._active: ServingModel | None = None
        self._previous: ServingModel | None = None
        self._offered: ServingModel | None = None
        self._offered_at = 0.0
        logger.info(
            "base model %s (%s) loaded on %s (%s) in %.2fs; pooling %s (%s)",
            base,
            self.base_info.model_type,
            self.device,
            dtype,
            self.base_load_seconds,
            self.pooling,
            self.pooling_reason,
        )

    @property
    def pooling(self) -> str:
        """The pooling every adapter served here must have been trained with."""
        return self.base_info.pooling

    @property
    def pooling_reason(self) -> str:
        """Why that pooling: set in config, or what ``auto`` found (for status)."""
        return self.base_info.pooling_reason

    # ------------------------------------------------------------------ building

    def check(self, adapter_dir: Path) -> None:
        """Refuse an adapter that cannot serve here, naming the mismatch (files only, fast)."""
        check_compatible(
            adapter_dir, self.base_info, self.labels, base_module_names=self._module_shapes
        )

    def build(self, version: str, adapter_dir: Path) -> ServingModel:
        """A model for ``version``, attached and warmed up; raises IncompatibleAdapterError.

        Runs in a thread of its own at a lower OS priority (see :func:`_in_build_thread`) and
        waits for it, so the caller's thread keeps its priority."""
        return _in_build_thread(lambda: self._build(version, adapter_dir))

    def _build(self, version: str, adapter_dir: Path) -> ServingModel:
        started = time.perf_counter()
        self.check(adapter_dir)
        with self._build_lock:
            model, checked = self._attach(adapter_dir)
        model.eval()
        # A version built from plain tensors was checked layer by layer against the base it
        # shares, whose forward has run: a warm-up would find nothing new. peft's modules were not.
        out_features = int(model.head.weight.shape[0]) if checked else self._warm_up(model)
        if out_features != len(self.labels):
            raise IncompatibleAdapterError(
                f"{adapter_dir}: the classifier has {out_features} outputs, the configured "
                f"label set has {len(self.labels)}: {list(self.labels)}"
            )
        built = ServingModel(
            version=version,
            model=model,
            path=str(adapter_dir),
            load_seconds=time.perf_counter() - started,
            owned_bytes=owned_bytes(model, self._base_model),
        )
        logger.info(
            "adapter %s built in %.3fs (%.1f MB of its own)",
            version[:12],
            built.load_seconds,
            built.owned_bytes / 1e6,
        )
        return built

    def _attach(self, adapter_dir: Path) -> tuple[Any, bool]:
        """The servable module tree of one adapter on the base (see the module docstring), and
        whether every tensor of it was checked against the base (the peft-free path)."""
        if self.merge_adapters:
            # A full copy: merging writes into the weights, so nothing can be shared.
            model = load_adapter(copy.deepcopy(self._base_model), adapter_dir)
            try:
                return model.merge_and_unload(), False
            except (RuntimeError, ValueError, AttributeError) as e:
                raise IncompatibleAdapterError(f"{adapter_dir}: cannot merge adapter: {e}") from e
        plain = (
            read_plain_lora(adapter_dir, head=self._base_model.head_name, device=str(self.device))
            if PLAIN_BUILDS
            else None
        )
        if plain is not None:
            return attach_plain(tree_copy(self._base_model), plain, source=adapter_dir), True
        model = load_adapter(shared_copy(self._base_model), adapter_dir)
        try:
            return unwrap_for_serving(model), False
        except (RuntimeError, ValueError, AttributeError, KeyError) as e:
            raise IncompatibleAdapterError(f"{adapter_dir}: cannot attach adapter: {e}") from e

    def _warm_up(self, model: Any) -> int:
        """One forward through every layer (first-call allocations happen here, not on traffic);
        returns the number of logits, the classifier's real output width.

        On one intra-op thread: with the batcher's forward running meanwhile, a second OpenMP
        team would put four spinning threads on two cores. Measured on the loaded 2-core box, a
        2-text warm-up took 150-200 ms of CPU and 0.8-1.1 s of wall time on 2 threads, 24-28 ms
        and 43-80 ms on one (bench/serving/README.md)."""
        import torch

        batch = self._warmup_batch.to(self.device)
        with _one_intra_op_thread(), torch.inference_mode():
            logits = model(**batch).logits
        return int(logits.shape[-1])

    # ------------------------------------------------------------------ slots

    def offer(self, built: ServingModel) -> None:
        """Make ``built`` the model the next micro-batch runs on."""
        with self._lock:
            self._offered = built
            self._offered_at = time.perf_counter()

    def model_for_next_batch(self) -> tuple[ServingModel | None, Swap | None]:
        """The model to run the next batch on, and the swap if one happened just now.

        Only the batcher's worker calls this, between two batches: that is what makes the swap
        atomic with respect to forward passes.
        """
        threads = self.serving_threads
        if getattr(self._pinned, "threads", None) != threads:
            _pin_intra_op_threads(threads)
            self._pinned.threads = threads
        with self._lock:
            offered, self._offered = self._offered, None
            if offered is None or offered is self._active:
                return self._active, None
            replaced = self._active
            released = replaced  # the same version built again: the old object goes
            if replaced is not None and replaced.version != offered.version:
                released, self._previous = self._previous, replaced
            if released is offered:  # a rollback to the previous slot frees nothing
                released = None
            self._active = offered
            waited = time.perf_counter() - self._offered_at
            return offered, Swap(
                new=offered,
                old=replaced,
                offered_to_serving_s=waited,
                released_bytes=released.owned_bytes if released is not None else 0,
            )

    @property
    def serving_threads(self) -> int:
        """Intra-op threads the next batch runs on: :attr:`threads` less the cores lent."""
        return max(1, self.threads - self._lent)

    @contextmanager
    def lend_cores(self, n: int) -> Iterator[None]:
        """Run batches on ``n`` fewer intra-op threads while a child process of this daemon (a
        retrain, a rescoring) computes on ``n`` cores, from the next batch on.

        An OpenMP team waits at every op for its slowest thread, and a thread that shares its
        core with the child is slow however niced the child is: in the quick demo on the 2-core
        box, serving on 2 threads beside a 1-thread training child answered about 3 predictions
        per second where the stream asked 20, and on 1 thread it kept up (20/s) while the child
        trained as fast (README, "Serving while a retrain runs")."""
        with self._lock:
            self._lent += n
        try:
            yield
        finally:
            with self._lock:
                self._lent -= n

    @property
    def active(self) -> ServingModel | None:
        with self._lock:
            return self._active

    @property
    def previous(self) -> ServingModel | None:
        with self._lock:
            return self._previous

    @property
    def pending(self) -> ServingModel | None:
        with self._lock:
            return self._offered

    def target_version(self) -> str | None:
        """The version being served, or about to be once the batcher picks up an offer."""
        with self._lock:
            current = self._offered or self._active
            return current.version if current is not None else None

    def ready_for(self, version: str) -> ServingModel | None:
        """An already-built model of ``version`` (active, offered or previous), if any."""
        with self._lock:
            for slot in (self._offered, self._active, self._previous):
                if slot is not None and slot.version == version:
                    return slot
        return None
