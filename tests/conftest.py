"""Session fixtures: the real test bed, shared by every test that needs it.

Behaviour:

- ``testbed`` attaches to a healthy bed in ``.testbed/`` (or ``$KOMMONS_TESTBED_DIR``): state
  file present, every process alive, every apiserver answering ``/readyz``. Such a bed is left
  running at the end (it belongs to whoever started it).
- Otherwise it brings one up there (3 providers, anvil) and takes it down at session end. A
  stale bed (state file, but something died) is stopped by pid first.
- Missing binaries are a test error with the fix ("run make deps"), never a skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from kommons_testbed.bed import Testbed, default_dir
from kommons_testbed.handles import ChainHandle
from kommons_testbed.processes import BedError
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


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The running bed: attached to if healthy, else started for this session."""
    directory = default_dir()
    state = load_state(directory)
    if state is not None:
        existing = Testbed(state)
        problems = existing.problems()
        if not problems:
            if len(existing.providers) < PROVIDERS:
                pytest.fail(
                    f"the bed running in {directory} has providers {list(existing.providers)}; "
                    f"the tests need {PROVIDERS}: run `make testbed-down` and "
                    f"`make testbed-up PROVIDERS={PROVIDERS}` (or just `make testbed-down`)",
                    pytrace=False,
                )
            _progress(f"attaching to the running bed in {directory}")
            yield existing
            return
        _progress(f"the bed in {directory} is unhealthy ({'; '.join(problems)}); stopping it")
        existing.down(progress=_progress)
    try:
        bed = Testbed.up(directory, providers=PROVIDERS, progress=_progress)
    except BedError as exc:
        pytest.fail(f"cannot start the test bed: {exc}", pytrace=False)
    try:
        yield bed
    finally:
        if os.environ.get("KOMMONS_TESTBED_KEEP") == "1":
            _progress(f"leaving the bed running in {directory} (KOMMONS_TESTBED_KEEP=1)")
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
