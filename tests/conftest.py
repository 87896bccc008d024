"""Session fixtures: the real test bed, shared by every test that needs it.

Behaviour:

- ``testbed`` attaches to a healthy bed in ``.testbed/`` (or ``$KOMMONS_TESTBED_DIR``): state
  file present, every process alive, every apiserver answering ``/readyz``.
- Otherwise it brings one up there (3 providers, anvil). A stale bed nobody uses (state file,
  but something died) is stopped by pid first; an unhealthy bed other sessions use is waited for.
- At the end, a bed started by tests is stopped by the last session using it; a bed started
  with ``make testbed-up`` is left running (``KOMMONS_TESTBED_KEEP=1`` keeps any).
- Missing binaries are a test error with the fix ("run make deps"), never a skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kommons_testbed import sessions
from kommons_testbed.bed import Testbed, bed_lock, default_dir
from kommons_testbed.handles import ChainHandle
from kommons_testbed.processes import BedError, wait_for
from kommons_testbed.state import load_state

PROVIDERS = 3

ProviderApi = Callable[[str], client.ApiClient]


def pytest_configure(config: pytest.Config) -> None:
    # The bed's processes outlive their Popen objects on purpose (they are stopped by pid);
    # CPython reports that as a ResourceWarning when the Popen is collected.
    config.addinivalue_line(
        "filterwarnings", r"ignore:subprocess \d+ is still running:ResourceWarning"
    )


def _progress(text: str) -> None:
    sys.stderr.write(f"testbed: {text}\n")
    sys.stderr.flush()


def _attach(directory: Path, bed: Testbed) -> Testbed:
    if len(bed.providers) < PROVIDERS:
        pytest.fail(
            f"the bed running in {directory} has providers {list(bed.providers)}; the tests "
            f"need {PROVIDERS}: run `make testbed-down` (and `make testbed-up "
            f"PROVIDERS={PROVIDERS}` to keep one running between test runs)",
            pytrace=False,
        )
    _progress(f"attaching to the running bed in {directory}")
    return bed


def _existing_bed(directory: Path) -> Testbed | None:
    """Return a healthy bed to attach to, or None after stopping an unhealthy unused one."""
    state = load_state(directory)
    if state is None:
        return None
    bed = Testbed(state)
    problems = bed.problems()
    if not problems:
        return _attach(directory, bed)
    others = sessions.live_sessions(directory)
    if others:
        # another session may be in the middle of a fault test (an apiserver stopped on purpose)
        _progress(f"the bed is unhealthy ({'; '.join(problems)}) while sessions {others} use it")
        try:
            wait_for(bed.healthy, timeout=120, what=f"the bed in {directory} to be healthy")
        except BedError as exc:
            pytest.fail(f"{exc}; problems: {bed.problems()}", pytrace=False)
        return _attach(directory, bed)
    _progress(f"the bed in {directory} is unhealthy ({'; '.join(problems)}); stopping it")
    bed.down(progress=_progress)
    return None


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The running bed: attached to if healthy, else started for this session.

    A bed started by tests is stopped by the last session using it (sessions register in
    ``<dir>/sessions/``); a bed started with ``make testbed-up`` is left running.
    """
    directory = default_dir()
    try:
        # one session at a time decides (and maybe starts the bed); others wait for it
        with bed_lock(directory, timeout=300):
            bed = _existing_bed(directory)
            if bed is None:
                bed = Testbed.up(directory, providers=PROVIDERS, progress=_progress)
                sessions.mark_started_by_tests(directory)
            sessions.register(directory)
    except BedError as exc:
        pytest.fail(f"cannot start the test bed: {exc}", pytrace=False)
    try:
        yield bed
    finally:
        with bed_lock(directory, timeout=300):
            sessions.unregister(directory)
            others = sessions.live_sessions(directory)
            if not directory.exists() or not sessions.started_by_tests(directory):
                pass  # gone already, or started with `make testbed-up`: not ours to stop
            elif os.environ.get("KOMMONS_TESTBED_KEEP") == "1":
                _progress(f"leaving the bed running in {directory} (KOMMONS_TESTBED_KEEP=1)")
            elif others:
                _progress(f"leaving the bed running in {directory}: sessions {others} use it")
            else:
                bed.down(progress=_progress)


@pytest.fixture(scope="session")
def chain(testbed: Testbed) -> ChainHandle:
    """The bed's anvil node: ``rpc_url``, ``chain_id``, funded ``accounts``."""
    return testbed.chain


@pytest.fixture(scope="session")
def hub_api(testbed: Testbed) -> Iterator[client.ApiClient]:
    """Admin API client of the hub cluster."""
    api = testbed.api_client("hub")
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def provider_api(testbed: Testbed) -> Iterator[ProviderApi]:
    """``provider_api("prov-a")`` -> admin API client of that provider (cached per session)."""
    clients: dict[str, client.ApiClient] = {}

    def get(name: str) -> client.ApiClient:
        if name not in testbed.providers:
            raise KeyError(f"no provider {name!r}; providers: {list(testbed.providers)}")
        if name not in clients:
            clients[name] = testbed.api_client(name)
        return clients[name]

    yield get
    for api in clients.values():
        api.close()  # type: ignore[no-untyped-call]
