"""The operator's kit in config/: Prometheus rules that promtool accepts and whose unit tests pass, a
Grafana dashboard whose queries parse, both on metric names the daemon exports, and every alert
pointing at a section of the runbook that exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.markdown import anchors as _anchors

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "config" / "alerts.yml"
RULE_TESTS = ROOT / "config" / "alerts_test.yml"
DASHBOARD = ROOT / "config" / "grafana-dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

# What the daemon exports (docs/interfaces.md "Metrics", the actor collector, and the gauges the rules rely
# on); counters by their exposed `_total` name, histograms by their base name.
EXPORTED = {
    "leadlawk_jobs_total",
    "leadlawk_leads_total",
    "leadlawk_stage_duration_seconds",
    "leadlawk_actor_messages_total",
    "leadlawk_actor_restarts_total",
    "leadlawk_actor_handle_seconds",
    "leadlawk_mailbox_depth",
    "leadlawk_mailbox_capacity",
    "leadlawk_circuit_breaker_state",
    "leadlawk_retries_total",
    "leadlawk_rate_limit_wait_seconds",
    "leadlawk_dead_letters_total",
    "leadlawk_dependency_up",
    "leadlawk_event_loop_lag_seconds",
    "leadlawk_browser_restarts_total",
    "leadlawk_in_flight",
    # The PageSpeed in-flight limit and the decaying latency it is sized from (resilience/inflight.py).
    "leadlawk_pagespeed_in_flight_limit",
    "leadlawk_pagespeed_latency_seconds",
    "leadlawk_pagespeed_latency_mean_seconds",
    # The site actor's in-flight limit and its measured latency (sites/demand.py).
    "leadlawk_site_in_flight_limit",
    "leadlawk_site_latency_mean_seconds",
    # The dyno's memory limit in bytes (config or cgroup); absent or 0 when unknown.
    "leadlawk_memory_limit_bytes",
    # Memory (PSS) of the Chromium process tree; optional: the rules fall back to RSS alone.
    "leadlawk_browser_memory_bytes",
    # Google Maps pages by the view Google showed, and whether the last one was its limited view.
    "leadlawk_maps_view_total",
    "leadlawk_maps_view_limited",
    # Deliveries by destination and outcome, and how long a digest waited (docs/deliveries.md).
    "leadlawk_deliveries_total",
    "leadlawk_delivery_latency_seconds",
    # Schedules: due times by outcome, fire lag, and how overdue the most overdue one is (docs/schedules.md).
    "leadlawk_schedule_fires_total",
    "leadlawk_schedule_fire_lag_seconds",
    "leadlawk_schedule_overdue_seconds",
    # The egress pool: each Maps exit's state, navigations and blocks (docs/egress-pool.md).
    "leadlawk_egress_state",
    "leadlawk_egress_navigations_total",
    "leadlawk_egress_blocks_total",
    # The fleet registry's gauges, each with the daemon's fleet id as `instance` (fleet/metrics.py).
    "leadlawk_daemon_info",
    "leadlawk_jobs_held",
    "leadlawk_fleet_daemons",
    "leadlawk_daemon_breaker_state",
    # prometheus_client's process collector.
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    # Made by Prometheus for every target.
    "up",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook_url"}
SEVERITIES = {"critical", "warning", "info"}

# A series name where a PromQL expression selects one: the identifiers we own or use.
_METRIC = re.compile(r"\b((?:leadlawk|process)_[a-z0-9_]+|up)\b(?=\s*[{\[)]|\s*$|\s+(?:and|or|unless|[<>=!*/+-]))")
_RECORDED = re.compile(r"\bleadlawk:[a-z0-9_:]+")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run scripts/setup.sh (it installs Debian's `prometheus` package)")
    return found


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _dashboard_exprs() -> Iterator[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    dashboard = json.loads(DASHBOARD.read_text())
    for panel in walk(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield target["expr"]


def _base_name(metric: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if metric.endswith(suffix) and metric.removesuffix(suffix) in EXPORTED:
            return metric.removesuffix(suffix)
    return metric


def _metrics_in(expr: str) -> set[str]:
    return {_base_name(name) for name in _METRIC.findall(expr)}


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - firing == set(), "alerts with no test where they fire"
    assert names - silent == set(), "alerts with no test where they stay silent"
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    checked = {
        m for case in tests for check in case.get("promql_expr_test", []) for m in _RECORDED.findall(check["expr"])
    }
    # Recording rules used only inside alerts are covered by those alerts' tests.
    used_by_alerts = {m for alert in _alerts() for m in _RECORDED.findall(alert["expr"])}
    assert recorded - checked - used_by_alerts == set(), "recording rules never checked"


def test_the_design_alerts_are_all_there() -> None:
    exprs = {alert["alert"]: alert["expr"] for alert in _alerts()}
    recorded = {rule["record"]: rule["expr"] for rule in _rules() if "record" in rule}
    assert "> 0.10" in exprs["LeadlawkJobFailureRateHigh"]
    assert 'status="failed"' in recorded["leadlawk:job_failure_ratio:rate15m"]
    assert "> 0.80" in exprs["LeadlawkMemoryHigh"]
    assert "> 5" in exprs["LeadlawkSlowResponses"]
    assert "leadlawk_mailbox_depth" in exprs["LeadlawkQueueDepthHigh"]
    assert "> 1000" in exprs["LeadlawkQueueDepthHigh"]
    assert "== 2" in exprs["LeadlawkCircuitBreakerOpen"]
    assert 'stage="written"' in recorded["leadlawk:leads_written:increase1h"]


def test_every_alert_has_severity_annotations_and_a_runbook_section() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for alert in _alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert set(alert["annotations"]) >= REQUIRED_ANNOTATIONS, name
        url = alert["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", url
        assert anchor in anchors, f"{name}: docs/runbook.md has no section #{anchor}"


def test_rules_use_only_exported_metrics() -> None:
    used = set().union(*(_metrics_in(rule["expr"]) for rule in _rules()))
    assert used, "no metric found in the rules: the pattern is broken"
    assert used - EXPORTED == set()


def test_dashboard_parses_and_uses_only_exported_or_recorded_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    rows = {panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"}
    assert {"Latency", "Traffic", "Errors", "Saturation"} <= rows

    exprs = list(_dashboard_exprs())
    used = set().union(*(_metrics_in(expr) for expr in exprs))
    assert used - EXPORTED == set()
    # Every golden signal is drawn from the daemon's own metrics, not only from rules.
    assert {"leadlawk_stage_duration_seconds", "leadlawk_leads_total", "leadlawk_dead_letters_total"} <= used
    assert {"leadlawk_mailbox_depth", "leadlawk_mailbox_capacity", "leadlawk_event_loop_lag_seconds"} <= used
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    referenced = {m for expr in exprs for m in _RECORDED.findall(expr)}
    assert referenced - recorded == set(), "the dashboard reads recording rules that do not exist"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses rule expressions: wrap each query, with Grafana's variables filled in, in a rule.
    exprs = [expr.replace("$__rate_interval", "5m").replace("$instance", ".*") for expr in _dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
