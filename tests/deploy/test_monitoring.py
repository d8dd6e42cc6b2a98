"""deploy/prometheus and deploy/grafana: the alert rules pass `promtool check rules` and their unit tests
(`promtool test rules`), and the dashboard asks only for metrics that exist. The dashboard's queries run against a
real Prometheus scraping real Memex processes in test_nginx_e2e.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from memex.metrics import Metrics
from tests.conftest import require
from tests.deploy.parts import DEPLOY

RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "memex.json"
# Metrics other exporters provide: the blackbox exporter (certificates), node exporter (disk), postgres_exporter
# (connections), Prometheus itself (up), and the backup metric recorded by `memex backup`.
EXTERNAL = {
    "up",
    "probe_ssl_earliest_cert_expiry",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "pg_stat_database_numbackends",
    "pg_settings_max_connections",
    "memex_backup_last_success_timestamp_seconds",
}
_FUNCTIONS = {
    "sum", "rate", "increase", "histogram_quantile", "max", "by", "time", "count", "absent", "deriv", "and", "on",
    "le", "bool", "first", "value", "humanize1024", "query", "with", "end", "or", "vector",
}  # fmt: skip


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        require("promtool", "install Debian's prometheus package")
    assert binary is not None
    return binary


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", [])]


def exported_metric_names() -> set[str]:
    """Every series name Memex's registry declares (counters with _total, histograms with _bucket, _sum, _count)."""
    return {name for names in Metrics().registry._collector_to_names.values() for name in names}


def _metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]|\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels))
    return {w for w in words if w not in _FUNCTIONS and not w.startswith("__")}


def test_alert_rules_pass_promtool_check() -> None:
    done = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_fire_as_their_unit_tests_say() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", "alerts.test.yml"], cwd=RULES.parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_the_issue_asks_for_is_there_and_tested() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {
        "MemexInstanceDown",
        "MemexHighErrorRate",
        "MemexSlowRequests",
        "MemexIngestionFailures",
        "MemexQueueGrowing",
        "MemexDatabaseConnectionsHigh",
        "MemexDiskFilling",
        "MemexBackupTooOld",
        "MemexLlmErrors",
        "MemexCertificateExpiresSoon",
    } <= names
    tests = yaml.safe_load((RULES.parent / "alerts.test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert names - fired <= {"MemexDatabaseUnavailable", "MemexBackupMetricMissing"}, names - fired
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_rules_and_dashboard_ask_only_for_metrics_that_exist() -> None:
    known = exported_metric_names() | EXTERNAL | {"process_resident_memory_bytes", "process_cpu_seconds_total"}
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    for expr in [rule["expr"] for rule in rules] + [expr for _, expr in dashboard_queries()]:
        unknown = _metric_names(expr) - known
        assert not unknown, (expr, unknown)


def test_the_dashboard_is_well_formed() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "memex"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert len(dashboard_queries()) >= 25


@pytest.mark.parametrize("path", [RULES, RULES.parent / "alerts.test.yml"], ids=lambda p: Path(p).name)
def test_rule_files_are_yaml(path: Path) -> None:
    assert yaml.safe_load(path.read_text())
