"""The Grafana dashboard: its structure, its generator, and the metric names it uses.

The last test scrapes a running appliance and checks that every metric name
used by a dashboard query or an alert rule is one the appliance exposes.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from promql import (
    DASHBOARD_FILE,
    ROOT,
    duration_seconds,
    exposed_metric_names,
    load_alert_rules,
    metric_names,
    range_windows,
)

PANEL_TYPES = {"row", "timeseries", "stat", "gauge"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ROW_TITLES = ["Overview", "Traffic", "Errors", "Latency per route", "Searches",
              "Sync runs and outcomes", "Contacts and changes", "Freshness",
              "Authorisation", "Disk", "Memory and CPU"]
# Series that Prometheus makes itself rather than scraping them.
PROMETHEUS_SERIES = {"up"}
VARIABLE_SELECTOR = 'job=~"$job", instance=~"$instance"'


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "dashboard_generate", ROOT / "dashboard" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DASHBOARD = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS = DASHBOARD["panels"]
QUERY_PANELS = [panel for panel in PANELS if panel["type"] != "row"]
TARGETS = [target for panel in QUERY_PANELS for target in panel["targets"]]
EXPRESSIONS = [target["expr"] for target in TARGETS]


def variable(name: str) -> dict:
    variables = DASHBOARD["templating"]["list"]
    return next(item for item in variables if item["name"] == name)


def variable_metric_names() -> set[str]:
    names = set()
    for item in DASHBOARD["templating"]["list"]:
        if item["type"] == "query":
            names.update(re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)",
                                    item["definition"]))
    return names


def test_dashboard_file_matches_generator():
    generator = load_generator()
    assert DASHBOARD_FILE.read_text(encoding="utf-8") == generator.render()


def test_dashboard_generator_check_flags_stale_file(tmp_path, monkeypatch):
    generator = load_generator()
    stale = tmp_path / "phonebook.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(generator, "OUTPUT", stale)
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_dashboard_classic_model_fields():
    assert DASHBOARD["id"] is None
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", DASHBOARD["uid"])
    assert DASHBOARD["title"]
    assert DASHBOARD["schemaVersion"] in (41, 42)
    assert "__inputs" not in DASHBOARD


@pytest.mark.parametrize("panel", PANELS, ids=lambda panel: panel["title"])
def test_dashboard_panel_type_is_built_in(panel):
    assert panel["type"] in PANEL_TYPES


def test_dashboard_panel_ids_are_unique():
    ids = [panel["id"] for panel in PANELS]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("panel", PANELS, ids=lambda panel: panel["title"])
def test_dashboard_panel_uses_datasource_variable(panel):
    assert panel["datasource"] == DATASOURCE


@pytest.mark.parametrize("panel", QUERY_PANELS, ids=lambda panel: panel["title"])
def test_dashboard_targets_use_datasource_variable(panel):
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE


@pytest.mark.parametrize("panel", QUERY_PANELS, ids=lambda panel: panel["title"])
def test_dashboard_target_ref_ids_are_unique(panel):
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert all(ref_ids)
    assert len(set(ref_ids)) == len(ref_ids)


def test_dashboard_rows_cover_every_topic():
    titles = [panel["title"] for panel in PANELS if panel["type"] == "row"]
    assert titles == ROW_TITLES


def test_dashboard_panels_fit_grid_without_overlap():
    cells: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_datasource_variable_picks_prometheus():
    datasource = variable("datasource")
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"


@pytest.mark.parametrize("name", ["job", "instance"])
def test_dashboard_job_instance_variables_query_prometheus(name):
    item = variable(name)
    assert item["type"] == "query"
    assert item["datasource"] == DATASOURCE
    assert item["definition"].startswith("label_values(")


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_dashboard_selectors_use_job_and_instance(expr):
    for name in metric_names(expr):
        for match in re.finditer(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr):
            following = expr[match.end():]
            assert following.startswith("{" + VARIABLE_SELECTOR), f"{name} in {expr}"


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_dashboard_ranges_use_rate_interval_or_minutes(expr):
    for window in range_windows(expr):
        if window != "$__rate_interval":
            assert duration_seconds(window) >= 4 * 60, window


def test_metrics_used_by_dashboard_and_alerts_exist(serve):
    appliance = serve()
    response = appliance.get("/metrics")
    assert response.status_code == 200
    exposed = exposed_metric_names(response.text) | PROMETHEUS_SERIES

    used = set(variable_metric_names())
    for expr in EXPRESSIONS:
        used |= metric_names(expr)
    for rule in load_alert_rules():
        used |= metric_names(rule["expr"])

    assert used, "no metric names found in the dashboard and the rules"
    assert sorted(used - exposed) == []
