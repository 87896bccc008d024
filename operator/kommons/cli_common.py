"""What the ``kommons`` commands that read the hub share: options, output, one-line errors.

Every error a user can meet (unknown object, hub unreachable, bad kubeconfig, access denied)
becomes one line on stderr and exit status 1 (:func:`user_errors`), never a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError


class Output(StrEnum):
    """``-o``: human text, or the objects for a program."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table (text), json or yaml.")]
NamespaceOption = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: the kubeconfig's, else default)."),
]
KubeconfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="Kubeconfig of the hub cluster (default: $KUBECONFIG, else ~/.kube/config).",
        dir_okay=False,
    ),
]


class CommandError(Exception):
    """A one-line error for the user."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn what a user can meet into ``error: …`` on stderr and exit status 1."""
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    from kommons.kube import KubeError, NotFound

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings are not for users
    try:
        yield
    except NotFound as exc:
        typer.echo(f"error: {exc.message or 'not found'}", err=True)
        raise typer.Exit(1) from exc
    except KubeError as exc:
        typer.echo(f"error: the hub refused or failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    except HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        typer.echo(f"error: cannot reach the hub: {reason}", err=True)
        raise typer.Exit(1) from exc
    except (CommandError, ConfigException, OSError, ValidationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: {first}", err=True)
        raise typer.Exit(1) from exc


def kubeconfig_path(given: Path | None) -> Path:
    """``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``; it must exist."""
    import os

    path = given or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    path = path or Path.home() / ".kube" / "config"
    if not path.is_file():
        raise CommandError(f"kubeconfig {path} does not exist (pass --kubeconfig)")
    return path


def connect_hub(kubeconfig: Path | None) -> Any:
    """A client of the hub with the caller's kubeconfig."""
    from kommons.kube import connect

    return connect(kubeconfig_path(kubeconfig), field_manager="kommons-cli")


def context_namespace(kubeconfig: Path) -> str | None:
    """The namespace of the kubeconfig's current context, as ``kubectl`` would use it."""
    config = yaml.safe_load(kubeconfig.read_text()) or {}
    current = config.get("current-context")
    for entry in config.get("contexts") or ():
        if entry.get("name") == current:
            return (entry.get("context") or {}).get("namespace")
    return None


def namespace_for(kubeconfig: Path | None, given: str | None) -> str:
    """``--namespace``, else the kubeconfig context's, else ``default``."""
    return given or context_namespace(kubeconfig_path(kubeconfig)) or "default"


def emit(objects: Any, output: Output, render: Callable[[], str]) -> None:
    """Print the objects as JSON/YAML, or what ``render`` returns for a table."""
    if output is Output.JSON:
        typer.echo(json.dumps(objects, indent=2, sort_keys=True, default=str))
    elif output is Output.YAML:
        typer.echo(yaml.safe_dump(objects, sort_keys=True).rstrip())
    else:
        typer.echo(render())
