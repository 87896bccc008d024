"""Pure parts of the bed's Prometheus support: config rendering and bind-failure detection.

(Named ``test_testbed_anvil_*`` only to stay in the chain/Prometheus owner's file set; it tests
``kommons_testbed.prometheus``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kommons_testbed.processes import BedError
from kommons_testbed.prometheus import is_bind_failure, render_config


def test_config_scrapes_targets_at_the_interval(tmp_path: Path) -> None:
    rules = tmp_path / "a.rules.yml"
    config = yaml.safe_load(
        render_config(
            ["127.0.0.1:8000", "127.0.0.1:8001"], rule_files=[rules], scrape_interval="2s"
        )
    )
    assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "2s"}
    assert config["rule_files"] == [str(rules.resolve())]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "kommons"
    assert job["scrape_timeout"] == "2s"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000", "127.0.0.1:8001"]}]


def test_config_without_targets_or_rules_is_still_valid_yaml() -> None:
    config = yaml.safe_load(render_config([]))
    assert config["rule_files"] == []
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": []}]


@pytest.mark.parametrize("target", ["127.0.0.1", "http://127.0.0.1:80/metrics", ":80", "h:x"])
def test_bad_targets_are_refused(target: str) -> None:
    with pytest.raises(BedError, match="host:port"):
        render_config([target])


def test_bind_failures_are_recognised() -> None:
    log = (
        'ts=2026-11-26T04:00:00Z caller=main.go:921 level=error msg="Unable to start web server"'
        ' err="listen tcp 127.0.0.1:9090: bind: address already in use"\n'
    )
    assert is_bind_failure(log)
    assert not is_bind_failure('level=error msg="Error loading config" err="parsing YAML"\n')
