"""Adapter versions that share the base model's weights: one copy of the base, however many
versions are loaded.

A version is its own module tree (so the batcher still switches one reference between two
micro-batches and a batch never sees two versions), but every base tensor in it is the very
tensor of the host's base model: :func:`shared_copy` copies modules, not weights. peft then
attaches the adapter to that tree, and :func:`unwrap_for_serving` replaces peft's per-layer
wrappers with :class:`LoraDelta`, which adds ``x A^T B^T`` (scaling folded into B) to the base
layer's output in place. What a version owns is its LoRA matrices and its classifier head: about
1.4 MB for r=8 on every linear layer of MiniLM, against 90 MB for the merged copy it used to be.

Why not peft's multi-adapter ``load_adapter``/``set_adapter`` on one model: the active adapter is
model-wide state, so building a standby would mutate the tree a forward pass is running on, and
each forward would have to set the adapter first. Why not merge: merging writes the delta into
the weights, which is exactly what two versions cannot share. The price is the LoRA product at
every forward: about 3 % more FLOPs for r=8, measured at 1.17x (MiniLM) and 1.27x (SmolLM2-135M)
the CPU time of a merged model at batch 32 (small-rank GEMMs run far below peak;
bench/memory/README.md). ``model.merge_adapters`` trades the memory back for that time.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from adaptd.errors import IncompatibleAdapterError
from adaptd.modeling.lora import PlainLora

logger = logging.getLogger(__name__)


def shared_copy(model: nn.Module) -> Any:
    """A deep copy of ``model`` whose parameters and buffers are the original's tensors: new
    module objects (peft can replace layers in it), no new weights. The original must then be
    treated as read-only, which the host's base model is."""
    memo: dict[int, Any] = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    return copy.deepcopy(model, memo)


def tree_copy(model: nn.Module) -> Any:
    """A new object for every module of ``model``, with its own parameter, buffer, submodule
    and hook tables, holding the original's tensors and every other attribute (``config``, ...)
    as they are: what :func:`attach_plain` needs to replace layers and the head in a version
    without touching the base. A fifth of the CPU of :func:`shared_copy`, whose deep copy
    also copies every attribute object (11 of the 17 ms a plain MiniLM build took with it).
    Not for peft's injection, which may set attributes (the config) it would then share."""
    copies: dict[int, nn.Module] = {}

    def copy_module(module: nn.Module) -> nn.Module:
        done = copies.get(id(module))
        if done is not None:  # a module registered in two places stays one module
            return done
        new = object.__new__(type(module))
        copies[id(module)] = new
        state: dict[str, Any] = {}
        for key, value in module.__dict__.items():
            if key == "_modules":
                state[key] = type(value)(
                    (name, None if child is None else copy_module(child))
                    for name, child in value.items()
                )
            elif isinstance(value, dict | list | set):
                state[key] = value.copy()  # keeps OrderedDict an OrderedDict
            else:
                state[key] = value
        new.__dict__.update(state)
        return new

    return copy_module(model)


class LoraDelta(nn.Module):
    """``base(x) + (x A^T) (s B)^T``: a frozen LoRA layer for inference, the base layer shared."""

    a_t: torch.Tensor
    b_t: torch.Tensor

    def __init__(self, base: nn.Module, a: torch.Tensor, b_scaled: torch.Tensor) -> None:
        super().__init__()
        self.base_layer = base
        # (in, r) and (r, out): both products are plain matmuls, the second accumulated into
        # the base output with addmm_ rather than materialising a (tokens, out) temporary.
        self.register_buffer("a_t", a.t().contiguous())
        self.register_buffer("b_t", b_scaled.t().contiguous())

    @classmethod
    def of(cls, base: nn.Linear, a: torch.Tensor, b_scaled: torch.Tensor) -> LoraDelta:
        """The delta in the base layer's dtype (peft's adapter tensors may be float32)."""
        dtype = base.weight.dtype
        return cls(base, a.to(dtype), b_scaled.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base_layer(x)
        a_t, b_t = self.a_t, self.b_t
        low = x.reshape(-1, x.shape[-1]).to(a_t.dtype) @ a_t
        if not out.is_contiguous():
            return out + (low @ b_t).view(out.shape).to(out.dtype)
        out.view(-1, out.shape[-1]).addmm_(low.to(b_t.dtype), b_t)
        return out


def _plain_lora(module: Any) -> str | None:
    """The single adapter of a peft LoRA linear layer that :class:`LoraDelta` can stand in for,
    or None (DoRA, LoRA bias, several adapters: left to peft's own forward)."""
    from peft.tuners.lora import Linear as LoraLinear

    if type(module) is not LoraLinear or len(module.active_adapters) != 1:
        return None
    name = str(module.active_adapters[0])
    if module.use_dora.get(name, False) or getattr(module, "lora_bias", {}).get(name, False):
        return None
    if not isinstance(module.lora_A[name], nn.Linear):
        return None
    return name


def unwrap_for_serving(peft_model: Any) -> Any:
    """The classifier inside ``peft_model`` with its LoRA layers as :class:`LoraDelta` and the
    trained head in place of peft's ``modules_to_save`` wrapper; eval mode, no peft state."""
    from peft.utils.other import ModulesToSaveWrapper

    model = peft_model.get_base_model()
    replaced = kept = 0
    gone: list[str] = []  # replaced modules: their children are no longer in the tree
    for name, module in list(model.named_modules()):
        if any(name.startswith(prefix) for prefix in gone):
            continue
        if isinstance(module, ModulesToSaveWrapper):
            _replace(model, name, module.modules_to_save[module.active_adapters[0]])
            gone.append(name + ".")
            continue
        adapter = _plain_lora(module)
        if adapter is None:
            kept += int(hasattr(module, "lora_A"))
            continue
        with torch.no_grad():
            a = module.lora_A[adapter].weight.detach()
            b = module.lora_B[adapter].weight.detach() * module.scaling[adapter]
        _replace(model, name, LoraDelta.of(module.base_layer, a, b))
        gone.append(name + ".")
        replaced += 1
    if kept:
        logger.info("%d LoRA layers keep peft's forward (DoRA, bias or several adapters)", kept)
    model.eval()
    return model


def attach_plain(model: nn.Module, lora: PlainLora, *, source: object) -> Any:
    """``model`` (a :func:`tree_copy` of the base classifier) with each LoRA layer of ``lora``
    as a :class:`LoraDelta` and the trained head in place: the same module tree as
    ``unwrap_for_serving(load_adapter(model, ...))`` gives, without peft. ``source`` names the
    adapter in errors. Raises IncompatibleAdapterError when a layer or the head does not fit."""
    for name, (a, b_scaled) in lora.layers.items():
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            raise IncompatibleAdapterError(
                f"{source}: LoRA on {name}, which the base model does not have"
            ) from None
        if type(layer) is not nn.Linear or a.shape[1] != layer.in_features:
            raise IncompatibleAdapterError(
                f"{source}: LoRA on {name}: lora_A {tuple(a.shape)} does not fit "
                f"{type(layer).__name__}({getattr(layer, 'in_features', '?')} inputs)"
            )
        if b_scaled.shape[0] != layer.out_features:
            raise IncompatibleAdapterError(
                f"{source}: LoRA on {name}: lora_B {tuple(b_scaled.shape)} does not fit "
                f"{layer.out_features} outputs"
            )
        _replace(model, name, LoraDelta.of(layer, a, b_scaled))
    head_name = str(getattr(model, "head_name", "classifier"))
    head = model.get_submodule(head_name)
    for key, param in head.named_parameters(recurse=False):
        saved = lora.head.get(key)
        if saved is None or saved.shape != param.shape:
            got = "nothing" if saved is None else f"shape {tuple(saved.shape)}"
            raise IncompatibleAdapterError(
                f"{source}: the head's {key} has {got}, the base's {head_name}.{key} has "
                f"shape {tuple(param.shape)} (a classifier for another label set?)"
            )
        # A new Parameter in the copied head: the base's own stays as it was.
        setattr(head, key, nn.Parameter(saved.to(param.dtype), requires_grad=False))
    return model.eval()


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def owned_bytes(model: nn.Module, base: nn.Module) -> int:
    """Bytes of tensors in ``model`` that are not ``base``'s: what one version costs."""
    shared = {t.data_ptr() for t in (*base.parameters(), *base.buffers())}
    seen: set[int] = set()
    total = 0
    for t in (*model.parameters(), *model.buffers()):
        ptr = t.data_ptr()
        if ptr in shared or ptr in seen:
            continue
        seen.add(ptr)
        total += t.numel() * t.element_size()
    return total
