"""Debian's Prometheus server scrapes a running appliance and runs every query.

The appliance syncs from the fake Google and serves phone traffic while
Prometheus scrapes it every second with the bearer token, as
docs/monitoring.md sets it up, and evaluates the alert rules. Then every
dashboard query and every alert expression must evaluate without error
through Prometheus's HTTP API, and the traffic, latency, sync and contact
queries must return data. The test skips when the prometheus binary is
missing.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from promql import DASHBOARD_FILE, RULES_FILE, load_alert_rules
from tests.google_fixtures import fake_google, google_config  # noqa: F401

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not found: install Debian's prometheus package "
           "(listed in tests/system-packages.txt)")

JOB = "phonebook"
TOKEN = "live-test-scrape-token-0123456789"
# Grafana makes $__rate_interval at least four scrape intervals, which is one
# minute when the data source's scrape interval is left at 15 s.
RATE_INTERVAL = "1m"
PHONE_HEADERS = {"X-CiscoIPPhoneModelName": "CP-8845"}
PHONE_PATHS = ["/directory", "/directory/browse", "/directory/search/name?q=ada",
               "/directory/search/number?q=555", "/directory/search/keypad?q=232",
               "/lookup?number=%2B442079460001", "/no-such-page"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrometheusServer:
    """Debian's prometheus on 127.0.0.1, with its config and storage in ``folder``."""

    def __init__(self, folder: Path, target: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token_file = folder / "phonebook.token"
        token_file.write_text(TOKEN + "\n", encoding="utf-8")
        self.config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [{
                "job_name": JOB,
                "authorization": {"type": "Bearer",
                                  "credentials_file": str(token_file)},
                "static_configs": [{"targets": [target]}],
            }],
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        config_path = self.folder / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        log = open(self.folder / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config_path}",
             f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._is_ready, 20, "Prometheus to become ready")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log_text(self) -> str:
        return (self.folder / "prometheus.log").read_text(errors="replace")

    def _is_ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"Prometheus exited: {self.log_text()}")
        try:
            return requests.get(self.url + "/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        """Evaluate ``expr`` now and return the API's JSON body."""
        response = requests.get(self.url + "/api/v1/query", params={"query": expr},
                                timeout=10)
        return response.json()

    def values(self, expr: str) -> list[float]:
        return [value for _, value in self.samples(expr)]

    def samples(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """Return the (labels, value) pairs of ``expr`` evaluated now."""
        body = self.query(expr)
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        return [(sample["metric"], float(sample["value"][1]))
                for sample in body["data"]["result"]]

    def total(self, expr: str) -> float:
        return sum(self.values(expr))

    def rules(self) -> list[dict[str, Any]]:
        body = requests.get(self.url + "/api/v1/rules", timeout=10).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def wait_for(predicate, timeout_s: float, description: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {description}")


def dashboard_queries(instance: str) -> dict[str, str]:
    """Return each dashboard query, variables filled in, keyed by panel title."""
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    queries = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                    .replace("$job", JOB).replace("$instance", instance))
            queries[f"{panel['title']} {target['refId']}"] = expr
    return queries


def drive_phone_traffic(appliance) -> None:
    for path in PHONE_PATHS:
        appliance.get(path, headers=PHONE_HEADERS)


def searches_seen(prometheus: PrometheusServer) -> float:
    return prometheus.total(f'phonebook_directory_searches_total{{job="{JOB}"}}')


def sync_runs_seen(prometheus: PrometheusServer, outcome: str) -> float:
    return prometheus.total(
        f'phonebook_sync_runs_total{{job="{JOB}", outcome="{outcome}"}}')


@pytest.fixture
def scraped(serve, google_config, fake_google, tmp_path):
    """Run the scenario: an appliance with traffic and syncs, scraped by Prometheus."""
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    fake_google.add_person("Alan", "Turing", numbers=["+44 20 7946 0002"])
    fake_google.add_person("Grace", "Hopper", numbers=["+1 650 555 0100"])
    config = google_config(sections={"server": {"port": "0"},
                                     "metrics": {"bearer_token": TOKEN,
                                                 "refresh_seconds": "1"}})
    appliance = serve(config=config)
    instance = f"127.0.0.1:{appliance.server.port}"
    (tmp_path / "prometheus").mkdir()
    prometheus = PrometheusServer(tmp_path / "prometheus", instance)
    prometheus.start()
    try:
        wait_for(lambda: prometheus.total(f'up{{job="{JOB}"}}') == 1, 15,
                 "the first successful scrape")

        # Two rounds of traffic, each seen by a scrape, so every rate has a
        # sample before and after the requests.
        for round_number in (1, 2):
            drive_phone_traffic(appliance)
            wait_for(lambda: searches_seen(prometheus) >= 3 * round_number, 15,
                     f"round {round_number} of searches in Prometheus")

        # The scheduler's own first sync may run before the first scrape, so
        # the successful sync counts from what Prometheus has already seen.
        scheduler = appliance.appliance.sync_scheduler
        ok_before = sync_runs_seen(prometheus, "ok")
        scheduler.trigger()
        wait_for(lambda: sync_runs_seen(prometheus, "ok") > ok_before, 20,
                 "a successful sync in Prometheus")
        fake_google.add_fault("connections.list", status=503, times=20)
        scheduler.trigger()
        wait_for(lambda: sync_runs_seen(prometheus, "error") >= 1, 20,
                 "a failed sync in Prometheus")
        fake_google.clear_faults()
        wait_for(lambda: all(rule["health"] != "unknown"
                             for rule in prometheus.rules()),
                 10, "Prometheus to evaluate every rule")
        yield prometheus, instance
    finally:
        prometheus.stop()


def label_values(prometheus: PrometheusServer, label: str, match: str) -> list[str]:
    """Run what Grafana's label_values(match, label) variable query runs."""
    response = requests.get(f"{prometheus.url}/api/v1/label/{label}/values",
                            params={"match[]": match}, timeout=10)
    return response.json()["data"]


def test_prometheus_runs_dashboard_and_alert_queries(scraped):
    prometheus, instance = scraped
    jobs = label_values(prometheus, "job", "phonebook_build_info")
    instances = label_values(prometheus, "instance",
                             f'phonebook_build_info{{job="{JOB}"}}')
    assert jobs == [JOB]
    assert instances == [instance]

    queries = dashboard_queries(instance)
    queries.update({rule["alert"]: rule["expr"] for rule in load_alert_rules()})

    failures = {}
    for name, expr in queries.items():
        body = prometheus.query(expr)
        if body["status"] != "success":
            failures[name] = body.get("error")
    unhealthy = {rule["name"]: rule.get("lastError") for rule in prometheus.rules()
                 if rule["health"] != "ok"}
    assert failures == {}
    assert unhealthy == {}
    assert len(prometheus.rules()) == len(load_alert_rules())

    # The key panels show data from the scenario.
    requests_by_route = prometheus.values(queries["Requests per second by route A"])
    directory_p95 = prometheus.values(queries["Directory p95 (5 minutes) A"])
    p95_by_route = prometheus.values(queries["p95 response time by route A"])
    sync_runs = prometheus.samples(queries["Sync runs in the last hour A"])
    contacts = prometheus.values(queries["Contacts A"])
    assert max(requests_by_route) > 0
    assert len(directory_p95) == 1
    assert math.isfinite(directory_p95[0])
    assert any(math.isfinite(value) and value > 0 for value in p95_by_route)
    outcomes = {labels["outcome"] for labels, value in sync_runs if value > 0}
    assert outcomes == {"ok", "error"}
    assert contacts == [3.0]
