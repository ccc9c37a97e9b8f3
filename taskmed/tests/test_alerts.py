"""The Prometheus alerts of deploy/prometheus and the Grafana dashboard of deploy/grafana: valid rules,
each firing on trouble and silent on a healthy system (promtool's unit tests on synthetic series), each
watching metrics that /metrics really exports, each with its runbook line in docs/operations.md, and each
shown on the dashboard."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from realtime.tests.test_consumer import as_member
from taskmed.tests.test_metrics import scrape

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "taskmed-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "taskmed.json"
TESTS = ROOT / "deploy" / "prometheus" / "taskmed-alerts.test.yml"


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("TASKMED_REQUIRE_SERVICES"):
            pytest.fail("promtool is missing (Debian's prometheus package; .ci/run installs it)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def test_the_rules_are_valid_and_their_unit_tests_pass():
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = subprocess.run(
        [promtool(), "check", "config", "--syntax-only", str(RULES.parent / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    tested = subprocess.run([promtool(), "test", "rules", str(TESTS)], capture_output=True, text=True, cwd=TESTS.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_dashboard_shows_what_every_alert_watches():
    shown = " ".join(t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"])
    for alert in alerts():
        for name in set(re.findall(r"\b(taskmed_[a-z_]+)", alert["expr"])):
            assert name in shown, f"{alert['alert']} watches {name}, which the dashboard does not show"


def test_every_alert_is_tested_firing_and_has_a_runbook_line():
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")}
    operations = (ROOT / "docs" / "operations.md").read_text()
    for alert in alerts():
        name = alert["alert"]
        assert name in fired, f"{name} has no unit test in which it fires"
        assert alert["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert re.search(rf"^#+ .*{name}\b", operations, re.M), f"docs/operations.md has no runbook for {name}"


@pytest.mark.django_db(transaction=True)
async def test_every_metric_the_alerts_watch_is_exported(settings, clinic, member):
    settings.METRICS_TOKEN = "scraper-secret"
    socket = await as_member(member, clinic)  # the process's hub is running: the bus's state is exported
    await scrape(settings)  # a request answered: the request counters have a sample
    exported = {name for name, _ in await scrape(settings)}
    await socket.disconnect()
    exprs = [alert["expr"] for alert in alerts()]
    exprs += [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]
    watched = {name for expr in exprs for name in re.findall(r"\b(taskmed_[a-z_]+|process_[a-z_]+)", expr)}
    if not settings.REDIS_URL:
        watched.discard("taskmed_redis_reachable")  # no bus between processes here
    assert watched - exported == set(), "the alerts or the dashboard watch metrics that /metrics does not export"
    assert len(watched) >= 10
