"""Carry out a :class:`~kommons.hub.plan.LeasePlan`: the hub's only writer of leases and placements.

It knows nothing of the market.

Every write is conditional on what the plan saw, so concurrent writers never silently
overwrite each other: updates are PUTs carrying the observed ``resourceVersion``, deletes
carry the observed ``uid``, new placements are created (a name that exists already is a
conflict, never an overwrite). A conflict stops the step; the caller plans again from the
fresher object the watch delivers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kommons.api import ComputeLease, LeasePlacement
from kommons.api_names import FINALIZER_HUB, LABEL_LEASE_UID
from kommons.config_copies import hub_copy
from kommons.hub.plan import CopyWrite, LeaseEvent, LeasePlan
from kommons.kube import Conflict, Kube, NotFound
from kommons.kube import resources as r

log = logging.getLogger("kommons.hub")
COMPONENT = "kommons-hub"
"""``reportingComponent`` of the hub's Events."""

JSON = dict[str, Any]


@dataclass
class Outcome:
    """What the executor wrote, for the market view to absorb at once."""

    lease: JSON | None = None
    """The lease as the API server returned it after the last write to it."""
    written: list[JSON] = field(default_factory=list)
    """Placements created or replaced, as returned."""
    deleted: list[LeasePlacement] = field(default_factory=list)
    """Placements deleted, or already gone."""
    copies: list[JSON] = field(default_factory=list)
    """Metadata of the config copies written (never their data)."""
    conflict: bool = False
    """A precondition failed: plan again from fresher objects."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Executor:
    """Writes plans through one :class:`Kube` client."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def execute(self, lease: ComputeLease, plan: LeasePlan) -> Outcome:
        """Apply ``plan`` for ``lease``.

        Order: Events; a finalizer to add (before any placement is created); placements;
        the config copies next to them; then the finalizer to remove, or the status.
        """
        outcome = Outcome()
        for event in plan.events:  # first: whoever sees the new status finds its Event too
            self.post_event(lease, event)
        try:
            version = lease.metadata.resource_version
            if plan.add_finalizer:
                # Before any placement exists: from now on a deleted lease waits for its
                # placements. Added after them, a lease deleted in between (or a hub killed in
                # between) would vanish at once and leave its placements running.
                version = self._finalizers(lease, plan, outcome, version)
                if outcome.lease is None:
                    return outcome  # the lease is gone: write nothing for it
            self._placements(plan, outcome)
            self._copies(plan, outcome)
            if plan.remove_finalizer and self._placements_left(lease, outcome):
                outcome.conflict = True  # the view was behind: plan again with them
            elif plan.remove_finalizer:
                self._finalizers(lease, plan, outcome, version)
            elif plan.status is not None:
                self._status(lease, plan, outcome, version)
        except Conflict as exc:
            log.debug("lease %s: conflict (%s); planning again", lease.metadata.name, exc)
            outcome.conflict = True
        return outcome

    def _placements(self, plan: LeasePlan, outcome: Outcome) -> None:
        for placement in plan.create:
            body = placement.to_api()
            namespace = placement.metadata.namespace
            outcome.written.append(self.kube.create(r.LEASE_PLACEMENTS, body, namespace))
        for placement in plan.update:
            outcome.written.append(self._replace(placement))
        for placement in plan.delete:
            meta = placement.metadata
            if meta.deletion_timestamp is None:
                self.kube.delete(r.LEASE_PLACEMENTS, str(meta.name), meta.namespace, uid=meta.uid)
            outcome.deleted.append(placement)

    def _copies(self, plan: LeasePlan, outcome: Outcome) -> None:
        """Write each copy from the source as it is now, owned by its placement.

        The placement's uid comes from the object the plan saw or, for a new one, from the
        create just done. A source gone meanwhile is skipped (its watch event re-plans the
        lease, which then waits for it). Nothing of the data is logged.
        """
        created: dict[tuple[str, str], str | None] = {}
        for body in outcome.written:
            meta = body.get("metadata") or {}
            created[(str(meta.get("namespace")), str(meta.get("name")))] = meta.get("uid")
        for write in plan.copies:
            owner = write.owner_uid or created.get((write.namespace, write.placement))
            outcome.copies.extend(self._copy(write, owner))

    def _copy(self, write: CopyWrite, owner_uid: str | None) -> list[JSON]:
        resource = r.SECRETS if write.kind == "Secret" else r.CONFIGMAPS
        source = self.kube.get_or_none(resource, write.name, write.source_namespace)
        if source is None:
            log.info(
                "%s %s/%s is gone: no copy for placement %s",
                write.kind,
                write.source_namespace,
                write.name,
                write.placement,
            )
            return []
        body = hub_copy(
            source,
            kind=write.kind,
            placement=write.placement,
            namespace=write.namespace,
            owner_uid=owner_uid,
        )
        written = self.kube.apply(r.SECRETS, body)
        log.info(
            "copied %s %s/%s to %s for placement %s",
            write.kind,
            write.source_namespace,
            write.name,
            write.namespace,
            write.placement,
        )
        return [written.get("metadata") or {}]

    def _placements_left(self, lease: ComputeLease, outcome: Outcome) -> bool:
        """Read the lease's placements from the API server before its finalizer goes.

        The plan removes the finalizer when the market view shows no placement left; a view
        lagging behind the hub's own writes (a placement created a moment before the tenant's
        delete) would let the lease go and leave that placement running, seen by nobody (chaos
        run, lease ``c151``). One list per deleted lease closes it: live placements found here
        are deleted now and the lease is planned again.
        """
        found = self.kube.list(
            r.LEASE_PLACEMENTS, label_selector=f"{LABEL_LEASE_UID}={lease.metadata.uid}"
        )
        live = [p for p in found if not (p.get("metadata") or {}).get("deletionTimestamp")]
        for body in live:
            meta = body["metadata"]
            log.info(
                "lease %s: placement %s/%s still there; deleting it before the lease goes",
                lease.metadata.name,
                meta.get("namespace"),
                meta.get("name"),
            )
            try:
                self.kube.delete(
                    r.LEASE_PLACEMENTS, meta["name"], meta.get("namespace"), uid=meta.get("uid")
                )
            except NotFound:
                continue
        return bool(live)

    def _replace(self, placement: LeasePlacement) -> JSON:
        """PUT a placement's new spec, conditional on the spec the plan was made from.

        The agent's status reports (and kopf's annotations) bump the placement's
        resourceVersion without touching its spec; on a busy hub the watch lags behind them, so
        a PUT with the observed version could conflict forever while the agent keeps reporting.
        On a conflict the placement is read again: the same object whose spec is unchanged
        (same ``generation``) gets the PUT again on top of the fresh version; anything else
        stays a conflict (plan again).
        """
        body = placement.to_api()
        try:
            return self.kube.replace(r.LEASE_PLACEMENTS, body)
        except Conflict:
            meta = placement.metadata
            fresh = self.kube.get_or_none(r.LEASE_PLACEMENTS, str(meta.name), meta.namespace)
            fresh_meta = (fresh or {}).get("metadata") or {}
            if (
                fresh is None
                or fresh_meta.get("uid") != meta.uid
                or fresh_meta.get("generation") != meta.generation
                or fresh_meta.get("deletionTimestamp")
            ):
                raise
            fresh["spec"] = body["spec"]
            fresh.pop("status", None)
            return self.kube.replace(r.LEASE_PLACEMENTS, fresh)

    def _finalizers(
        self, lease: ComputeLease, plan: LeasePlan, outcome: Outcome, version: str | None
    ) -> str | None:
        """Add or remove the hub's finalizer; the lease's new resourceVersion."""
        meta = lease.metadata
        finalizers = [f for f in meta.finalizers or () if f != FINALIZER_HUB]
        if plan.add_finalizer:
            finalizers.append(FINALIZER_HUB)
        try:
            outcome.lease = self.kube.patch(
                r.COMPUTE_LEASES,
                str(meta.name),
                {"metadata": {"finalizers": finalizers, "resourceVersion": version}},
                meta.namespace,
            )
        except NotFound:
            return version  # the lease is gone: nothing left to write
        return str(outcome.lease["metadata"]["resourceVersion"])

    def _status(
        self, lease: ComputeLease, plan: LeasePlan, outcome: Outcome, version: str | None
    ) -> None:
        assert plan.status is not None
        meta = lease.metadata
        body = lease.to_api()
        body["metadata"] = {
            "name": meta.name,
            "namespace": meta.namespace,
            "resourceVersion": version,
        }
        body["status"] = plan.status.to_api()
        outcome.lease = self.kube.request(
            "PUT", r.COMPUTE_LEASES.path(meta.namespace, str(meta.name)) + "/status", body=body
        )

    def post_event(self, lease: ComputeLease, event: LeaseEvent) -> None:
        """Post an Event on the lease as ``kommons-hub``; failures are logged, not raised."""
        meta = lease.metadata
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
            "involvedObject": {
                "apiVersion": lease.api_version,
                "kind": "ComputeLease",
                "name": meta.name,
                "namespace": meta.namespace,
                "uid": meta.uid,
                "resourceVersion": meta.resource_version,
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "firstTimestamp": now[:19] + "Z",
            "lastTimestamp": now[:19] + "Z",
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
        }
        try:
            self.kube.create(r.EVENTS, body, meta.namespace)
        except Exception as exc:  # an Event is best effort; never fail a step for it
            log.warning("lease %s/%s: event not posted: %s", meta.namespace, meta.name, exc)
