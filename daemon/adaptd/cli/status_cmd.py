from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import typer

from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load
from adaptd.errors import AdaptdError


def status(
    url: str | None = typer.Option(
        None, help="Daemon base URL (default: server.host/port from the config)."
    ),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what a running daemon is doing: adapter, queue, log writer, policies, retrain."""
    settings = load(config)
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/v1/status", timeout=10) as response:
            document: dict[str, Any] = json.load(response)
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as e:
        raise AdaptdError(f"no daemon answering at {base}: {e}") from e
    if as_json:
        emit_json(document)
        return
    for line in render(document):
        print(line)


def render(doc: dict[str, Any]) -> list[str]:
    """The operator's first questions, one line each: is it up, which adapter serves since when
    and why, is the log keeping up, what did the last check see, what are policies waiting for."""
    ready = "ready" if doc.get("ready") else f"NOT READY: {doc.get('not_ready_reason')}"
    lines = [
        f"adaptd {doc.get('version')}, role {doc.get('role')}, {doc.get('state')}, {ready} "
        f"(up {_duration(doc.get('uptime_seconds'))})"
    ]
    adapter = doc.get("adapter")
    if adapter is not None:
        serving = _short(adapter.get("serving")) or "none"
        since = f" since {adapter['promoted']}" if adapter.get("promoted") else ""
        why = f": {adapter['promoted_reason']}" if adapter.get("promoted_reason") else ""
        lines.append(_row("serving", f"{serving}{since}{why}"))
        for version, reason in (adapter.get("refused") or {}).items():
            lines.append(_row("refused", f"{_short(version)}: {reason}"))
        fallback = adapter.get("fallback")
        if fallback:
            lines.append(
                _row(
                    "fallback",
                    f"serving {_short(fallback['serving'])} instead of the active "
                    f"{_short(fallback['instead_of'])}, which cannot be built here",
                )
            )
    queue = doc.get("queue")
    if queue is not None:
        lines.append(_row("queue", f"{queue.get('depth')} of {queue.get('size')} texts waiting"))
    log = doc.get("log")
    if log is not None:
        store = "store ok" if log.get("store_ok") else f"store error: {log.get('last_error')}"
        lines.append(
            _row(
                "log",
                f"lag {log.get('lag_seconds')} s, {log.get('queued_rows')} queued, "
                f"{log.get('written_rows')} written, {log.get('dropped_rows')} dropped; {store}",
            )
        )
    leader = doc.get("leader")
    if leader is not None:
        role = (
            f"leader since {leader.get('since')}"
            if leader.get("leader")
            else f"standby (leader: {leader.get('current_leader') or 'none'})"
        )
        lines.append(_row("control", role))
    control = doc.get("control")
    if control is not None and not control.get("standby"):
        lines.extend(_control(control))
    reload = (doc.get("config") or {}).get("last_reload") or {}
    if reload.get("ts"):
        state = "ok" if reload.get("ok") else f"REFUSED: {reload.get('error')}"
        lines.append(_row("config", f"last reload at {reload['ts']}: {state}"))
    return lines


def _control(control: dict[str, Any]) -> list[str]:
    lines = []
    last = control.get("last_check")
    if last is None:
        lines.append(_row("last check", "none yet"))
    elif last.get("error"):
        lines.append(_row("last check", f"{last['ts']}: failed: {last['error']}"))
    else:
        drifted = last.get("drifted") or []
        seen = f"drifted: {', '.join(drifted)}" if drifted else "no signal drifted"
        lines.append(
            _row("last check", f"{last['ts']} ({last.get('duration_s') or 0:.2f} s): {seen}")
        )
    for i, policy in enumerate(control.get("policies") or []):
        lines.append(_row("policies" if i == 0 else "", f"{policy['name']:<20} {_policy(policy)}"))
    retrain = control.get("retrain") or {}
    if retrain.get("running"):
        progress = control.get("retrain_progress") or {}
        fraction = progress.get("fraction")
        done = f", {fraction:.0%} ({progress.get('phase')})" if fraction is not None else ""
        text = f"running for policy {retrain.get('policy')} since {retrain.get('started')}{done}"
    else:
        text = "idle"
        if retrain.get("last_finished"):
            text += f"; last run finished {retrain['last_finished']}"
        if retrain.get("last_error"):
            text += f" with error: {retrain['last_error']}"
    lines.append(_row("retrain", text))
    probation = control.get("probation")
    if probation:
        lines.append(
            _row(
                "probation",
                f"{_short(probation['version'])} since {probation['since']} "
                f"(rolls back to {_short(probation['previous'])} if worse)",
            )
        )
    return lines


def _policy(policy: dict[str, Any]) -> str:
    if not policy.get("enabled", True):
        return "disabled"
    phase = policy.get("phase")
    text = str(phase)
    if phase == "pending":
        text += f" ({policy.get('pending')} recent check(s) held)"
    labels = policy.get("labels") or {}
    if labels.get("awaited"):
        text += (
            f", waiting for {labels['awaited']} more labels "
            f"({labels.get('new')} of {labels.get('needed')} since the shift)"
        )
    elif policy.get("action_due"):
        text += f", {policy.get('action')} held back by cooldown or budget"
    refine = policy.get("refine") or {}
    if refine:
        text += (
            f", refinement running ({refine.get('left')} more allowed)"
            if refine.get("needed") is None
            else f", next refinement at {refine['needed']} labels since the shift "
            f"({refine.get('new')} so far, {refine.get('left')} allowed)"
        )
    if policy.get("last_action"):
        text += f"; last {policy.get('action')} {policy['last_action']}"
    return text


def _row(key: str, text: str) -> str:
    return f"{key:<12} {text}"


def _short(version: str | None) -> str | None:
    return version[:12] if version else None


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"
