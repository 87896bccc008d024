"""The bed's Prometheus: the real Debian ``prometheus`` server and ``promtool``, on loopback.

``hack/testbed/install-prometheus.sh`` installs the Debian package. :func:`start_prometheus`
writes a scrape config and runs a server whose TSDB lives in the bed's state directory;
:func:`query` reads from its HTTP API; :func:`promtool_check_rules` and
:func:`promtool_check_config` run ``promtool`` on files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kommons_testbed.handles import PrometheusHandle
from kommons_testbed.processes import BedError, ProcessRecord, free_port, is_alive, spawn, stop

_BIND_FAILURES = ("address already in use", "bind: ")
"""Log fragments that mean the listen port was taken between choosing and binding it."""


def _tool(name: str, env: str) -> Path:
    override = os.environ.get(env)
    found = override or shutil.which(name) or f"/usr/bin/{name}"
    path = Path(found)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BedError(f"{name} not installed; run `make deps` (no executable at {path})")
    return path


def prometheus_binary() -> Path:
    """Return the ``prometheus`` server binary (``$KOMMONS_PROMETHEUS`` overrides the lookup).

    Raises:
        BedError: It is not installed.
    """
    return _tool("prometheus", "KOMMONS_PROMETHEUS")


def promtool_binary() -> Path:
    """Return the ``promtool`` binary (``$KOMMONS_PROMTOOL`` overrides the lookup).

    Raises:
        BedError: It is not installed.
    """
    return _tool("promtool", "KOMMONS_PROMTOOL")


def render_config(
    scrape_targets: Sequence[str],
    *,
    rule_files: Sequence[Path] = (),
    scrape_interval: str = "1s",
    job_name: str = "kommons",
) -> str:
    """Render a Prometheus configuration scraping ``scrape_targets`` as one job.

    Args:
        scrape_targets: ``host:port`` of each ``/metrics`` endpoint.
        rule_files: Alerting/recording rule files to load (made absolute).
        scrape_interval: Scrape and rule evaluation interval (a Prometheus duration).
        job_name: The ``job`` label of the scraped series.

    Returns:
        The YAML text of the configuration.

    Raises:
        BedError: A target is not of the form ``host:port``.
    """
    for target in scrape_targets:
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit() or "/" in target:
            raise BedError(f"scrape target {target!r} is not host:port")
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": job_name,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": list(scrape_targets)}],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def is_bind_failure(log_text: str) -> bool:
    """Whether Prometheus's log says its listen address was already taken.

    Args:
        log_text: This run's part of the Prometheus log.

    Returns:
        True when the failure was a lost race for the port (worth retrying on another one).
    """
    lowered = log_text.lower()
    return any(fragment in lowered for fragment in _BIND_FAILURES)


def start_prometheus(
    state_dir: Path,
    scrape_targets: Sequence[str],
    *,
    rule_files: Sequence[Path] = (),
    scrape_interval: str = "1s",
    timeout: float = 60.0,
    attempts: int = 5,
) -> tuple[ProcessRecord, PrometheusHandle]:
    """Write a scrape config and start Prometheus on a free loopback port; wait for ``/-/ready``.

    The config goes to ``<state_dir>/prometheus/prometheus.yml`` (checked with ``promtool``
    first), the TSDB to ``<state_dir>/prometheus/data``, the log to
    ``<state_dir>/logs/prometheus.log``. Prometheus has no "port 0", so the port comes from
    :func:`free_port`; if another program takes it before Prometheus binds, it is started
    again on a new port (up to ``attempts`` times). ``--web.enable-lifecycle`` is on, so a test
    may ``POST /-/reload`` after changing rule files.

    Args:
        state_dir: The bed's state directory.
        scrape_targets: ``host:port`` of each ``/metrics`` endpoint to scrape.
        rule_files: Rule files to load.
        scrape_interval: Scrape and rule evaluation interval.
        timeout: Seconds to wait for readiness per attempt.
        attempts: How many ports to try.

    Returns:
        The process record (for the state file and :func:`stop`) and the handle.

    Raises:
        BedError: Prometheus or promtool is missing, the config is invalid, or the server
            exited or did not become ready (the message includes the end of its log).
    """
    binary = prometheus_binary()
    home = state_dir / "prometheus"
    data = home / "data"
    config_file = home / "prometheus.yml"
    log = state_dir / "logs" / "prometheus.log"
    data.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(
        render_config(scrape_targets, rule_files=rule_files, scrape_interval=scrape_interval)
    )
    ok, output = promtool_check_config(config_file)
    if not ok:
        raise BedError(f"promtool rejects {config_file}:\n{output}")

    for _ in range(attempts):
        port = free_port()
        offset = log.stat().st_size if log.exists() else 0
        argv = [
            str(binary),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            f"--web.console.templates={home / 'consoles'}",
            f"--web.console.libraries={home / 'console_libraries'}",
        ]
        record = spawn("prometheus", argv, log)
        url = f"http://127.0.0.1:{port}"
        try:
            if _wait_ready(record, url, data, offset, timeout):
                return record, PrometheusHandle(url=url, config_file=config_file)
        except BaseException:
            stop(record)
            raise
        stop(record)
    raise BedError(f"prometheus lost the race for a free port {attempts} times; see {log}")


def _wait_ready(record: ProcessRecord, url: str, data: Path, offset: int, timeout: float) -> bool:
    """Wait until *our* server is ready; False if it lost its port, BedError on other failures.

    Readiness counts only when ``/api/v1/status/flags`` reports our TSDB path, so another
    server that grabbed the port cannot be mistaken for ours.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not is_alive(record.pid):
            text = _read_from(record.log, offset)
            if is_bind_failure(text):
                return False
            raise BedError(f"prometheus exited; log {record.log}:\n{_tail(text)}")
        if _is_ours_and_ready(url, data):
            return True
        if time.monotonic() >= deadline:
            text = _read_from(record.log, offset)
            raise BedError(
                f"timed out after {timeout:.0f}s waiting for prometheus at {url}/-/ready; "
                f"log {record.log}:\n{_tail(text)}"
            )
        time.sleep(0.1)


def _is_ours_and_ready(url: str, data: Path) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            if response.status != 200:
                return False
        flags = _get_json(f"{url}/api/v1/status/flags")
    except (OSError, ValueError, BedError):
        return False
    tsdb_path = str(flags.get("data", {}).get("storage.tsdb.path", ""))
    return Path(tsdb_path) == data


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        # The API answers 4xx with a JSON body that says what is wrong (e.g. a PromQL error).
        body = exc.read().decode(errors="replace")
        raise BedError(f"GET {url} -> {exc.code}: {body}") from exc
    except (OSError, ValueError) as exc:
        raise BedError(f"GET {url} failed: {exc}") from exc
    if not isinstance(reply, dict):
        raise BedError(f"GET {url}: unexpected reply {reply!r}")
    return reply


def query(handle: PrometheusHandle, promql: str) -> list[dict[str, Any]]:
    """Evaluate an instant query via ``/api/v1/query`` and return its result list.

    Args:
        handle: The running Prometheus.
        promql: The PromQL expression.

    Returns:
        For a vector, one ``{"metric": {labels}, "value": [ts, "value"]}`` per series (empty
        when nothing matches); for a scalar or string, a one-element list with ``value``.

    Raises:
        BedError: The server did not answer or rejected the query.
    """
    url = f"{handle.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    reply = _get_json(url)
    if reply.get("status") != "success":
        raise BedError(f"query {promql!r} failed: {reply.get('error', reply)}")
    data = reply["data"]
    result = data["result"]
    if data.get("resultType") in ("scalar", "string"):
        return [{"metric": {}, "value": result}]
    return list(result)


def query_values(handle: PrometheusHandle, promql: str) -> list[float]:
    """Evaluate ``promql`` and return just the sample values, as floats, in result order."""
    return [float(series["value"][1]) for series in query(handle, promql)]


def promtool_check_rules(path: Path) -> tuple[bool, str]:
    """Run ``promtool check rules`` on a rule file.

    Args:
        path: The rule file.

    Returns:
        Whether promtool accepts it, and its combined output.
    """
    return _promtool("check", "rules", str(path))


def promtool_check_config(path: Path) -> tuple[bool, str]:
    """Run ``promtool check config`` on a Prometheus configuration (and the rule files it names).

    Args:
        path: The configuration file.

    Returns:
        Whether promtool accepts it, and its combined output.
    """
    return _promtool("check", "config", str(path))


def _promtool(*args: str) -> tuple[bool, str]:
    proc = subprocess.run(
        [str(promtool_binary()), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode == 0, proc.stdout
