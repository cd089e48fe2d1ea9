"""The shipped Prometheus files pass promtool: the scrape config, the alert rules, their tests.

Debian's ``prometheus`` package ships promtool; CI installs it (``.ci/run``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bicameral.testing.servers import require_program

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture
def promtool() -> str:
    return require_program("promtool", "prometheus")


def check(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_scrape_config_is_valid_with_its_token_file_and_rules(
    promtool: str, tmp_path: Path
) -> None:
    token = tmp_path / "bicameral.token"
    token.write_text("a-token\n")
    config = tmp_path / "prometheus.yml"
    text = (DEPLOY / "prometheus.yml").read_text()
    assert "/etc/prometheus/bicameral.token" in text
    config.write_text(text.replace("/etc/prometheus/bicameral.token", str(token)))
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    out = check(promtool, "check", "config", str(config))
    assert "5 rules found" in out
    check(promtool, "check", "config", "--syntax-only", str(DEPLOY / "prometheus.yml"))


def test_the_alert_rules_are_valid_and_do_what_their_tests_say(promtool: str) -> None:
    check(promtool, "check", "rules", str(DEPLOY / "alerts.yml"))
    check(promtool, "test", "rules", str(Path(__file__).with_name("alerts_test.yml")))
