"""Generate the Grafana dashboard (adaptd.json) with Grafana's own grafana-foundation-sdk.

Run ``python dashboards/build.py`` after changing a panel; a test fails when the checked-in
adaptd.json and this generator disagree, and an end-to-end test requires data for every query
after a real loop (traffic, drift, retrain, promotion, rollback) under a real Prometheus.

The panels are a table (row, title, kind, queries, unit): what an operator reads first is the
list of questions, not the builder calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, gauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).with_name("adaptd.json")
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
KINDS: dict[str, Any] = {
    "timeseries": timeseries.Panel,
    "stat": stat.Panel,
    "table": table.Panel,
    "gauge": gauge.Panel,
}

ROWS: list[tuple[str, list[tuple[str, str, list[str], str]]]] = [
    (
        "Serving",
        [
            (
                "Predictions/s by adapter",
                "timeseries",
                ["sum by (adapter) (rate(adaptd_predictions_total[1m]))"],
                "reqps",
            ),
            (
                "Request latency p50 / p99",
                "timeseries",
                [
                    'histogram_quantile(0.5, sum by (le) (rate(adaptd_http_request_duration_seconds_bucket{route="/v1/predict"}[5m])))',
                    'histogram_quantile(0.99, sum by (le) (rate(adaptd_http_request_duration_seconds_bucket{route="/v1/predict"}[5m])))',
                ],
                "s",
            ),
            (
                "HTTP errors/s by code",
                "timeseries",
                ['sum by (code) (rate(adaptd_http_requests_total{code=~"4..|5.."}[5m]))'],
                "reqps",
            ),
            (
                "Queue depth and 503s",
                "timeseries",
                ["adaptd_queue_depth", "rate(adaptd_queue_rejections_total[5m])"],
                "short",
            ),
            (
                "Mean batch size",
                "stat",
                ["sum(rate(adaptd_batch_size_sum[5m])) / sum(rate(adaptd_batch_size_count[5m]))"],
                "short",
            ),
            ("Active adapter", "table", ["adaptd_active_adapter_info == 1"], "short"),
        ],
    ),
    (
        "Prediction log",
        [
            (
                "Rows written/s",
                "timeseries",
                ["rate(adaptd_prediction_log_written_total[1m])"],
                "short",
            ),
            ("Writer lag", "timeseries", ["adaptd_prediction_log_lag_seconds"], "s"),
            (
                "Dropped rows by reason",
                "timeseries",
                ["sum by (reason) (increase(adaptd_prediction_log_dropped_total[5m]))"],
                "short",
            ),
            ("Store reachable (1) on every instance", "stat", ["min(adaptd_store_up)"], "short"),
            (
                "Store write errors/s (retried)",
                "timeseries",
                ["rate(adaptd_prediction_log_write_errors_total[5m])"],
                "short",
            ),
        ],
    ),
    (
        "Drift, accuracy and bias",
        [
            (
                "Embedding drift (domain-classifier AUC)",
                "timeseries",
                ['adaptd_signal_value{signal="drift.embedding.auc"}'],
                "short",
            ),
            (
                "Accuracy: labelled vs estimated without labels",
                "timeseries",
                [
                    'adaptd_signal_value{signal="performance.accuracy"}',
                    'adaptd_signal_value{signal="performance.estimated_accuracy"}',
                ],
                "percentunit",
            ),
            (
                "Prediction drift (Jensen-Shannon)",
                "timeseries",
                ['adaptd_signal_value{signal="drift.prediction.jsd"}'],
                "short",
            ),
            (
                "Bias: demographic parity / equalized odds differences",
                "timeseries",
                ['adaptd_signal_value{signal=~"bias\\\\..*\\\\.(dp_diff|eo_diff)"}'],
                "short",
            ),
            (
                "Signals in drift",
                "stat",
                ['count(adaptd_signal_status{status="drift"} == 1)'],
                "short",
            ),
            (
                "Which signals drift now",
                "table",
                ['adaptd_signal_status{status="drift"} == 1'],
                "short",
            ),
            (
                "Check duration",
                "timeseries",
                [
                    "rate(adaptd_monitor_check_duration_seconds_sum[15m]) / rate(adaptd_monitor_check_duration_seconds_count[15m])"
                ],
                "s",
            ),
        ],
    ),
    (
        "Policies and retraining",
        [
            ("Policy state", "table", ["adaptd_policy_state == 1"], "short"),
            (
                "Labels each retrain policy still waits for",
                "timeseries",
                ["adaptd_policy_labels_awaited"],
                "short",
            ),
            (
                "Trips and actions",
                "timeseries",
                [
                    "sum by (policy, action) (increase(adaptd_policy_trips_total[1h]))",
                    "sum by (policy, action) (increase(adaptd_policy_actions_total[1h]))",
                ],
                "short",
            ),
            (
                "Retrain outcomes",
                "timeseries",
                ["sum by (outcome) (increase(adaptd_retrain_runs_total[1h]))"],
                "short",
            ),
            ("Retrain progress", "gauge", ["adaptd_retrain_progress_ratio"], "percentunit"),
            (
                "Swaps and swap duration",
                "timeseries",
                [
                    "increase(adaptd_adapter_swaps_total[1h])",
                    "rate(adaptd_adapter_swap_duration_seconds_sum[1h]) / rate(adaptd_adapter_swap_duration_seconds_count[1h])",
                ],
                "short",
            ),
            ("Probation rollbacks", "stat", ["sum(adaptd_probation_rollbacks_total)"], "short"),
            (
                "Refused adapter versions",
                "stat",
                ["sum(adaptd_adapter_swap_failures_total)"],
                "short",
            ),
            ("Retrain running", "stat", ["max(adaptd_retrain_running)"], "short"),
            (
                "Check results",
                "timeseries",
                ["sum by (result) (increase(adaptd_monitor_checks_total[1h]))"],
                "short",
            ),
            ("Alerts raised by policies", "table", ["adaptd_policy_alert_active == 1"], "short"),
            (
                "Last config reload succeeded (1) on every instance",
                "stat",
                ["min(adaptd_config_last_reload_success)"],
                "short",
            ),
        ],
    ),
]


def build() -> dict[str, Any]:
    board = (
        dashboard.Dashboard("adaptd")
        .uid("adaptd")
        .tags(["adaptd"])
        .refresh("30s")
        .time("now-6h", "now")
    )
    for row_title, panels in ROWS:
        board = board.with_row(dashboard.Row(row_title))
        for title, kind, exprs, unit in panels:
            panel = KINDS[kind]().title(title).unit(unit).datasource(DATASOURCE).height(8).span(8)
            for i, expr in enumerate(exprs):
                panel = panel.with_target(
                    prometheus.Dataquery().expr(expr).ref_id(chr(ord("A") + i))
                )
            board = board.with_panel(panel)
    document: dict[str, Any] = _without_nulls(json.loads(JSONEncoder().encode(board.build())))
    return document


def _without_nulls(value: Any) -> Any:
    # The SDK writes unset fields as null (e.g. "options": null); Grafana fills in defaults
    # only for absent keys, so absent is what we ship.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
