"""Kopf settings shared by the hub and the agent: Kommons' own finalizer and annotations."""

from __future__ import annotations

import logging
import socket

import kopf

from kommons.api_names import PREFIX


def configure_settings(settings: kopf.OperatorSettings, *, role: str) -> None:
    """Use ``kommons.io/<role>`` as finalizer, keep kopf's progress in annotations, post as us.

    Progress in annotations (not ``status``) survives the strict status schemas of the CRDs;
    the role in the names keeps the hub's and the agent's bookkeeping apart on the objects
    both of them watch.
    """
    settings.persistence.finalizer = f"{PREFIX}/{role}"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=f"{role}.{PREFIX}"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"{role}.{PREFIX}", key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # Events kopf posts (handler failures and the like) name Kommons, not the framework.
    settings.posting.reporting_component = f"kommons-{role}"
    settings.posting.reporting_instance = socket.gethostname()
    settings.posting.event_name_prefix = f"kommons-{role}-"
    settings.watching.server_timeout = 120
    settings.networking.request_timeout = 60
