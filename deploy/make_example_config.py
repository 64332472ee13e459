"""Write deploy/adaptd.example.yaml from the configuration models themselves.

Every key appears with its real default and its description, so the example cannot drift from the
code: tests/unit/test_deploy.py fails when it does, and this script fixes it:

    PYTHONPATH=daemon python deploy/make_example_config.py
"""

from __future__ import annotations

import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from adaptd.config import Settings

OUT = Path(__file__).with_name("adaptd.example.yaml")
WIDTH = 100

#: Where a systemd installation differs from the laptop defaults (see adaptd.service).
DEPLOY_VALUES: dict[tuple[str, ...], Any] = {("state_dir",): "/var/lib/adaptd"}

#: Extra guidance for keys whose value usually comes from the environment file.
NOTES: dict[tuple[str, ...], str] = {
    ("store", "url"): "Keep credentials out of this file: set ADAPTD_STORE__URL in adaptd.env.",
    ("server", "admin_token"): "adaptd.env shows the {env: ADMIN_TOKEN} way.",
    ("state_dir",): "systemd's StateDirectory=adaptd creates and owns /var/lib/adaptd.",
    ("policies",): "e.g. [/etc/adaptd/policies/drift.yaml]; relative paths start at this file.",
}

HEADER = """\
# adaptd configuration: every key, with its default value and what it means.
#
# Generated from the code by deploy/make_example_config.py; copy it to /etc/adaptd/adaptd.yaml
# and change what you need (deleting a key means its default). Unknown keys are errors, reported
# as file:line: key. Environment variables override this file: ADAPTD_ plus the key path joined
# by "__", e.g. ADAPTD_SERVER__PORT=8099 (see adaptd.env). Relative paths are resolved against
# the directory of this file. `adaptd config show` prints the effective configuration and
# `adaptd config schema` its JSON schema (for editors).
"""


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _bounds(metadata: list[Any]) -> list[str]:
    """``>= 1`` and the like, from a field's (or an ``Annotated`` member's) constraints."""
    return [
        f"{symbol} {getattr(item, attr)}"
        for item in metadata
        for attr, symbol in _BOUNDS
        if isinstance(item, getattr(annotated_types, attr.capitalize()))
    ]


def _constraints(field: FieldInfo) -> list[str]:
    out = _bounds(field.metadata)
    for item in field.metadata:
        if isinstance(item, annotated_types.MinLen):
            out.append(f"at least {item.min_length} items")
    annotation = field.annotation
    choices = [
        str(v)
        for arg in (annotation, *typing.get_args(annotation))
        if typing.get_origin(arg) is typing.Literal
        for v in typing.get_args(arg)
    ]
    args = typing.get_args(annotation)
    if choices and bool in args:  # `bool | Literal["auto"]`
        choices = ["true", "false", *choices]
    for arg in args:  # `Annotated[int, Field(ge=1)] | Literal["auto"]`
        if typing.get_origin(arg) is typing.Annotated and choices:
            inner = [
                m
                for item in arg.__metadata__
                for m in (item.metadata if isinstance(item, FieldInfo) else [item])
            ]
            bounds = _bounds(inner)
            kind = typing.get_args(arg)[0].__name__
            choices = [" ".join([f"an {kind}", *bounds]), *choices]
    if choices:
        out.append("one of " + ", ".join(choices))
    return out


def _comment(text: str, indent: str) -> list[str]:
    return [
        f"{indent}# {line}"
        for line in textwrap.wrap(" ".join(text.split()), WIDTH - len(indent) - 2)
    ]


#: One line on what each section is for (a section's own docstring is used when it has one).
SECTIONS: dict[str, str] = {
    "store": "The store: predictions, feedback, adapter versions, signals, policy state, events.",
    "server": "The HTTP API (predict, feedback, status, admin, health, metrics).",
    "model": "The base model and label set every adapter must fit.",
    "serving": "Micro-batching, the prediction log and hot-swap polling.",
    "logging": "Logs go to stderr, i.e. the journal under systemd.",
    "scheduler": "When the monitors run.",
    "monitors": "Windows the drift, accuracy and bias monitors compare.",
    "retraining": "The fine-tune run that a tripped policy (or `adaptd retrain`) starts.",
    "validation": "Gates a candidate adapter must pass before it replaces the active one.",
    "privacy": "What is kept of the texts served: all of it, redacted, or only a keyed hash.",
}


def _block(value: Any, indent: str) -> str:
    """Lists and mappings of mappings read better as YAML blocks than as one long line."""
    nested = value.values() if isinstance(value, dict) else value
    if isinstance(value, list | dict) and any(isinstance(v, list | dict) for v in nested):
        dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=WIDTH)
        return "\n" + textwrap.indent(dumped.rstrip("\n"), indent + "  ")
    return " " + _scalar(value)


def _scalar(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False)
    return dumped.strip().removesuffix("...").strip()


def _render(model: BaseModel, path: tuple[str, ...], lines: list[str]) -> None:
    indent = "  " * len(path)
    for name, field in type(model).model_fields.items():
        key = (*path, name)
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append("")
            doc = field.description or SECTIONS.get(name) or (type(value).__doc__ or "").strip()
            if doc:
                lines.extend(_comment(doc, indent))
            lines.append(f"{indent}{name}:")
            _render(value, key, lines)
            continue
        if not path and lines[-1]:
            lines.append("")
        text = field.description or ""
        limits = _constraints(field)
        if limits:
            text += f" ({'; '.join(limits)})"
        if key in NOTES:
            text += " " + NOTES[key]
        lines.extend(_comment(text, indent))
        default = model.model_dump(mode="json", include={name})[name]
        data = DEPLOY_VALUES.get(key, default)
        lines.append(f"{indent}{name}:{_block(data, indent)}")


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    # model_construct: the defaults alone, never this machine's ADAPTD_* environment.
    _render(Settings.model_construct(), (), lines)
    return "\n".join(lines) + "\n"


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
