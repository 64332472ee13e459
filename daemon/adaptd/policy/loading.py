"""Reading policy files into validated policies, with ``file:line: field: message`` errors.

Used by ``adaptd policy validate``, by the daemon at start-up and on SIGHUP. It never raises for a
bad file: it returns every error it found, so the caller can report them all and keep the
policies it had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adaptd.errors import ConfigError
from adaptd.policy.conditions import PER_ATTRIBUTE, TAG_PREFIX
from adaptd.policy.schema import ACTION_TYPES, Policy, PolicyFile
from adaptd.signals import SignalSpec
from adaptd.yamlfile import YamlDocument, load_yaml


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyError:
    """One problem in one policy file, as one line an operator can act on."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


def _clean_loc(error: Mapping[str, Any]) -> tuple[str | int, ...]:
    """The error's location as keys of the file.

    Union tags (ours start with "~"; the action's are its type names) are pydantic's
    bookkeeping, not keys; an unknown action type is reported at the ``type`` key.
    """
    out: list[str | int] = []
    for part in error["loc"]:
        if isinstance(part, str) and part.startswith(TAG_PREFIX):
            continue
        if out and out[-1] == "action" and part in ACTION_TYPES:
            continue
        out.append(part)
    if error["type"] == "union_tag_invalid":
        out.append(str(error.get("ctx", {}).get("discriminator", "")).strip("'"))
    return tuple(out)


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    if error["type"] == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return (
            f"unknown action type {ctx.get('tag')!r} (expected one of {ctx.get('expected_tags')})"
        )
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    value = error.get("input")
    if error["type"] not in ("value_error",) and not isinstance(value, dict | list | tuple):
        message += f" (got {value!r})"
    return message


def _errors_of(e: ValidationError, doc: YamlDocument) -> list[PolicyError]:
    errors = [(error, _clean_loc(error)) for error in e.errors(include_url=False)]
    out = []
    for error, loc in errors:
        # A list whose every item failed is also "too short"; the items' errors say why.
        if error["type"] == "too_short" and any(
            len(other) > len(loc) and other[: len(loc)] == loc for _, other in errors
        ):
            continue
        out.append(
            PolicyError(
                path=doc.path,
                line=doc.line_of(loc) or (1 if not loc else None),
                field=".".join(str(p) for p in loc),
                message=_message(error),
            )
        )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalNames:
    """What signal names a deployment's monitors export, to check policy files against."""

    known: Mapping[str, SignalSpec]
    #: request attributes the config lists (`monitors.attributes`)
    attributes: Sequence[str] = ()
    #: names exported once per listed attribute, ``{attribute}`` standing for it
    per_attribute: Sequence[str] = ()

    def context(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "attributes": list(self.attributes),
            PER_ATTRIBUTE: list(self.per_attribute),
        }


def _context(known: Mapping[str, SignalSpec] | SignalNames | None) -> dict[str, Any]:
    if isinstance(known, SignalNames):
        return known.context()
    return {"known": known}


def parse_policy_file(
    path: Path, known: Mapping[str, SignalSpec] | SignalNames | None
) -> tuple[list[Policy], list[PolicyError]]:
    """The policies of one file, or the errors in it. ``known=None`` skips the name check."""
    try:
        doc = load_yaml(path)
    except ConfigError as e:
        # load_yaml's message already starts with "file:line:"; split it back into parts.
        text = str(e).removeprefix(f"{path}")
        line: int | None = None
        if text.startswith(":") and text[1:].split(":", 1)[0].isdigit():
            number, text = text[1:].split(":", 1)
            line = int(number)
        return [], [PolicyError(path=path, line=line, field="", message=text.lstrip(": "))]
    if not isinstance(doc.data, dict):
        return [], [
            PolicyError(
                path=path,
                line=1,
                field="",
                message="the top level must be a mapping with the key 'policies'",
            )
        ]
    try:
        parsed = PolicyFile.model_validate(doc.data, context=_context(known))
    except ValidationError as e:
        return [], _errors_of(e, doc)
    return list(parsed.policies), []


def load_policies(
    paths: Sequence[Path], known: Mapping[str, SignalSpec] | SignalNames | None
) -> tuple[list[Policy], list[PolicyError]]:
    """Every policy of every file, in order, and every error found.

    Callers that must not run half a configuration (the daemon's reload) use the policies only
    when the error list is empty.
    """
    policies: list[Policy] = []
    errors: list[PolicyError] = []
    where: dict[str, Path] = {}
    for path in paths:
        found, problems = parse_policy_file(path, known)
        errors.extend(problems)
        for index, policy in enumerate(found):
            if policy.name in where:
                errors.append(
                    PolicyError(
                        path=path,
                        line=_line_of_name(path, index),
                        field=f"policies.{index}.name",
                        message=f"policy {policy.name!r} is already defined in "
                        f"{where[policy.name]}",
                    )
                )
                continue
            where[policy.name] = path
            policies.append(policy)
    return policies, errors


def _line_of_name(path: Path, index: int) -> int | None:
    try:
        return load_yaml(path).line_of(("policies", index, "name"))
    except ConfigError:
        return None
