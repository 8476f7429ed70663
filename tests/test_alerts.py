"""The alert rules, their promtool unit tests and the Alertmanager example.

promtool and amtool come from Debian's prometheus and prometheus-alertmanager
packages (tests/system-packages.txt); the tests that run them skip when they
are missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from promql import (
    ROOT,
    RULE_TESTS_DIR,
    RULES_FILE,
    duration_seconds,
    load_alert_rules,
    range_windows,
    rule_test_files,
    runbook_anchors,
)

ALERTMANAGER_EXAMPLE = ROOT / "alerts" / "alertmanager.example.yml"
SEVERITIES = ("critical", "warning")
# Prometheus's default scrape interval is one minute. Every range in a rule must
# contain at least four scrapes at that interval.
DEFAULT_SCRAPE_INTERVAL_S = 60

ALERTS = load_alert_rules()
ALERT_NAMES = [rule["alert"] for rule in ALERTS]


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: install Debian's {package} package "
                    "(listed in tests/system-packages.txt)")
    return path


def run_tool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in args], capture_output=True, text=True,
                          timeout=60)


def alert_rule_tests() -> list[dict]:
    """Return every alert_rule_test entry of every promtool test file."""
    entries = []
    for path in rule_test_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in document["tests"]:
            entries += test.get("alert_rule_test", [])
    return entries


def test_rules_pass_promtool_check():
    promtool = require_tool("promtool", "prometheus")
    result = run_tool(promtool, "check", "rules", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda path: path.name)
def test_rules_pass_promtool_unit_tests(test_file):
    promtool = require_tool("promtool", "prometheus")
    result = run_tool(promtool, "test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_rules_unit_test_shows_alert_firing(alert):
    firing = [entry for entry in alert_rule_tests()
              if entry["alertname"] == alert and entry["exp_alerts"]]
    assert firing, f"no promtool test expects {alert} to fire"


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_rules_unit_test_shows_alert_silent(alert):
    silent = [entry for entry in alert_rule_tests()
              if entry["alertname"] == alert and not entry["exp_alerts"]]
    assert silent, f"no promtool test expects {alert} to stay silent"


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_rules_alert_has_for_and_severity(rule):
    assert duration_seconds(rule["for"]) > 0
    assert rule["labels"]["severity"] in SEVERITIES


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_rules_alert_has_annotations(rule):
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_rules_runbook_has_alert_section(rule):
    anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
    assert anchor in runbook_anchors()


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_rules_ranges_hold_four_scrapes(rule):
    for window in range_windows(rule["expr"]):
        assert duration_seconds(window) >= 4 * DEFAULT_SCRAPE_INTERVAL_S, window


def test_rules_alert_names_are_unique():
    assert len(set(ALERT_NAMES)) == len(ALERT_NAMES)


# Each change breaks one rule in a way a reviewer could miss, and the promtool
# test file that covers the rule must fail on it.
BROKEN_RULES = [
    pytest.param("sum by (job, instance, le)", "sum by (job, instance)", "serving.yml",
                 id="quantile-without-le"),
    pytest.param('route!~"/metrics.*|/health.*|/livez|/readyz"', 'route!~"/none"',
                 "serving.yml", id="error-ratio-counts-health"),
    pytest.param(") >= 5", ") >= 0", "serving.yml",
                 id="error-ratio-without-traffic-floor"),
    pytest.param("phonebook_sync_enabled == 1", "phonebook_sync_enabled >= 0",
                 "sync.yml", id="sync-alerts-ignore-enabled"),
    pytest.param("> 3 * 3600", "> 4 * 3600", "freshness.yml",
                 id="sync-success-threshold-moved"),
    pytest.param("> 0)\n              or on", "> -1)\n              or on",
                 "freshness.yml", id="never-synced-counts-from-1970"),
    pytest.param('process_start_time_seconds{job="phonebook"}',
                 "process_start_time_seconds", "target.yml", id="restart-loop-any-job"),
    pytest.param("< 0.05", "< 0.01", "box.yml", id="disk-critical-threshold-moved"),
]


@pytest.mark.parametrize(("original", "broken", "test_name"), BROKEN_RULES)
def test_rules_unit_tests_catch_broken_rule(tmp_path, original, broken, test_name):
    promtool = require_tool("promtool", "prometheus")
    rules = RULES_FILE.read_text(encoding="utf-8")
    assert original in rules
    (tmp_path / "phonebook.rules.yml").write_text(rules.replace(original, broken),
                                                  encoding="utf-8")
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    shutil.copy(RULE_TESTS_DIR / test_name, tests_dir / test_name)

    result = run_tool(promtool, "test", "rules", tests_dir / test_name)
    assert result.returncode != 0, result.stdout


def test_alertmanager_example_passes_amtool():
    amtool = require_tool("amtool", "prometheus-alertmanager")
    result = run_tool(amtool, "check-config", ALERTMANAGER_EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["severity=critical", "alertname=PhonebookDown"], "it-email-and-webhook"),
    (["severity=warning", "alertname=PhonebookSyncFailing"], "it-email"),
])
def test_alertmanager_example_routes_by_severity(labels, receiver):
    amtool = require_tool("amtool", "prometheus-alertmanager")
    result = run_tool(amtool, "config", "routes", "test",
                      f"--config.file={ALERTMANAGER_EXAMPLE}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_example_inhibits_known_alerts():
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text(encoding="utf-8"))
    named = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            names = matcher.split("=", 1)[1].strip('~"')
            named.update(names.split("|"))
    assert named <= set(ALERT_NAMES)
