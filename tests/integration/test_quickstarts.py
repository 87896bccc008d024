"""Every command of ``docs/quickstarts.md``, run in order on a ``make run`` stack of its own.

The stack is what ``make run`` starts (``kommons-testbed run``: hub, three providers, anvil,
hub operator, agents, the examples applied), in a directory of the test's own so the shared
bed of the other tests is not touched. Each role's commands run verbatim in one ``bash``
(``set -eo pipefail``), from the repository root; then what each role is told it will see is
checked on the output:

- tenant: the new lease is listed Running, explained, its logs shown (the simulated container's
  last line, once per replica), billed;
- provider: its status says Ready; the server-side dry run of the chart's provider role passes;
- hub admin: the new team may create ComputeLeases (``yes``) and not LeasePlacements (``no``);
- SRE: the hub's metrics pass ``promtool check metrics``; the alert rules' unit tests pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kommons_testbed.kwok import POD_LOG

pytestmark = pytest.mark.bed

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "quickstarts.md"
MARK = "@@@ command "
LAST_LOG_LINE = POD_LOG.read_text().splitlines()[-1].split(" ", 3)[3]


def sections() -> dict[str, list[str]]:
    """Role (the ``## Role: …`` heading's first word(s)) → its ``$ `` commands, in order."""
    found: dict[str, list[str]] = {}
    role = None
    in_console = False
    for line in GUIDE.read_text().splitlines():
        if line.startswith("## "):
            role = line[3:].split(":")[0].strip()
        elif line.startswith("```console"):
            in_console = True
        elif line.startswith("```"):
            in_console = False
        elif in_console and role and line.startswith("$ "):
            found.setdefault(role, []).append(line[2:])
    return found


def run_role(commands: list[str], bed_dir: Path) -> dict[str, str]:
    """Run the commands in one shell; return command → its output. Fails naming the command."""
    script = ["set -eo pipefail"]
    for index, command in enumerate(commands):
        script += [f"echo '{MARK}{index}'", command]
    env = {**os.environ, "KOMMONS_TESTBED_DIR": str(bed_dir)}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    outputs: dict[str, str] = {}
    current = None
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            current = commands[int(line[len(MARK) :])]
            outputs[current] = ""
        elif current is not None:
            outputs[current] += line + "\n"
    if done.returncode != 0:
        failed = current or "(before the first command)"
        raise AssertionError(
            f"quick start command failed (exit {done.returncode}): {failed}\n"
            f"stdout:\n{outputs.get(failed, '')}\nstderr:\n{done.stderr[-3000:]}"
        )
    return outputs


def output_of(outputs: dict[str, str], pattern: str) -> str:
    (command,) = [c for c in outputs if re.search(pattern, c)]
    return outputs[command]


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``make run`` in a directory of its own; stopped after the module."""
    directory = tmp_path_factory.mktemp("quickstart-bed")
    testbed = [sys.executable, "-m", "kommons_testbed.cli", "--dir", str(directory)]
    started = subprocess.run(
        [*testbed, "run", "--providers", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        yield directory
    finally:
        subprocess.run([*testbed, "down"], capture_output=True, check=False, timeout=300)


def test_the_guide_has_the_four_roles() -> None:
    assert list(sections()) == ["Tenant", "Provider", "Hub admin", "SRE"]
    assert all(len(commands) >= 5 for commands in sections().values())


@pytest.mark.timeout(1800)
def test_every_quick_start_command_works(stack_dir: Path) -> None:
    roles = sections()

    tenant = run_role(roles["Tenant"], stack_dir)
    listed = output_of(tenant, r"^kommons lease list")
    assert re.search(r"\bweb-2\s+Running\s+2/2\b", listed), listed
    assert "Why: the last decision" in output_of(tenant, r"^kommons lease explain")
    logs = output_of(tenant, r"^kommons logs")
    assert logs.count(LAST_LOG_LINE) == 2, logs
    assert logs.count("==> ") == 2, logs
    assert "TOTAL" in output_of(tenant, r"^kommons bill")

    provider = run_role(roles["Provider"], stack_dir)
    assert "Phase: Ready" in output_of(provider, r"^kommons provider status")
    dry_run = output_of(provider, r"^helm template")
    assert "deployment.apps/kommons-provider created (server dry run)" in dry_run, dry_run

    admin = run_role(roles["Hub admin"], stack_dir)
    assert output_of(admin, r"can-i create computeleases").strip() == "yes"
    assert output_of(admin, r"can-i create leaseplacements").strip() == "no"
    assert (
        "prov-d" in output_of(admin, r"^kommons onboard")
        or (stack_dir / "prov-d.hub.kubeconfig").is_file()
    )

    sre = run_role(roles["SRE"], stack_dir)
    assert output_of(sre, r"grep '\^kommons_providers\{'").startswith("kommons_providers{")
    assert "SUCCESS" in output_of(sre, r"promtool check rules")
    assert "SUCCESS" in output_of(sre, r"promtool test rules")
