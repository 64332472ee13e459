"""Generate the Grafana dashboard (adaptd.json) from a short list of panels.

Run ``python dashboards/build.py`` after changing a panel; a test checks that every metric a
panel or an alert rule uses is exported by a running daemon.
"""

from __future__ import annotations

import json
from pathlib import Path

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
        ],
    ),
]


def panel(pid: int, title: str, kind: str, exprs: list[str], unit: str, x: int, y: int) -> dict:
    return {
        "id": pid,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "datasource": {"uid": "prometheus"}}
            for i, expr in enumerate(exprs)
        ],
    }


def build() -> dict:
    panels: list[dict] = []
    y, pid = 0, 1
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y = pid + 1, y + 1
        for i, (title, kind, exprs, unit) in enumerate(row_panels):
            panels.append(panel(pid, title, kind, exprs, unit, (i % 3) * 8, y + (i // 3) * 8))
            pid += 1
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "uid": "adaptd",
        "title": "adaptd",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["adaptd"],
        "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("adaptd.json")
    out.write_text(json.dumps(build(), indent=2) + "\n")
