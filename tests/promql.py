"""Helpers for tests that read PromQL: the alert rules and the dashboard queries.

``metric_names`` is a small lexer, not a PromQL parser: it is enough for the
expressions this repository writes (selectors, functions, aggregations with
by/on clauses, arithmetic), and promtool and the live Prometheus test check
the syntax for real.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES_FILE = ROOT / "alerts" / "phonebook.rules.yml"
RULE_TESTS_DIR = ROOT / "alerts" / "tests"
DASHBOARD_FILE = ROOT / "dashboard" / "phonebook.json"
RUNBOOK_FILE = ROOT / "docs" / "runbook.md"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "Inf", "NaN", "inf", "nan"}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400,
                     "w": 604800, "y": 31536000}


def metric_names(expr: str) -> set[str]:
    """Return the metric names that the PromQL expression ``expr`` selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _KEYWORDS}


def range_windows(expr: str) -> list[str]:
    """Return the text inside every ``[...]`` range selector of ``expr``."""
    text = _STRING.sub('""', expr)
    return [match[1:-1].strip() for match in _RANGE.findall(text)]


def duration_seconds(text: str) -> float:
    """Convert a Prometheus duration such as ``1h30m`` to seconds."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _DURATION_SECONDS[unit] for number, unit in parts)


def load_alert_rules() -> list[dict[str, Any]]:
    """Return every alerting rule of ``alerts/phonebook.rules.yml``."""
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]
            if "alert" in rule]


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def exposed_metric_names(exposition: str) -> set[str]:
    """Return every series name a Prometheus text exposition can produce.

    Names come from the ``# TYPE`` lines, so a labelled metric with no series
    yet still counts, and from the sample lines. Histograms add their
    ``_bucket``, ``_count`` and ``_sum`` series.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in ("_bucket", "_count", "_sum"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def github_anchor(heading: str) -> str:
    """Return the anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    """Return the anchors of every heading in ``docs/runbook.md``."""
    lines = RUNBOOK_FILE.read_text(encoding="utf-8").splitlines()
    return {github_anchor(line.lstrip("#")) for line in lines if line.startswith("#")}
