"""The hub's record of when a provider was Unreachable (``Provider.status.outages``; pure).

Written by the hub only, from heartbeats the hub itself observed: when a provider turns
``Unreachable`` a window opens at the last heartbeat the hub saw (billing stops there); when
its heartbeat is seen again the window closes at that moment. The newest
:data:`~kommons.api.provider.OUTAGE_LIMIT` windows are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from kommons.api.provider import OUTAGE_LIMIT, Outage
from kommons.metering.timeline import instant, seconds


def outages_after(
    current: Sequence[Outage] | None,
    *,
    unreachable: bool,
    last_heartbeat: datetime | None,
    now: datetime,
) -> list[Outage] | None:
    """The outage list after the hub evaluated the provider, or ``None`` if unchanged.

    Args:
        current: ``status.outages`` as stored.
        unreachable: Whether the hub now sees the provider Unreachable.
        last_heartbeat: The hub's clock when it last saw the heartbeat change (``None``: not
            since the hub started; the window then opens ``now``).
        now: The hub's clock.
    """
    windows = list(current or ())
    open_ = windows[-1] if windows and windows[-1].end is None else None
    if unreachable and open_ is None:
        start = last_heartbeat if last_heartbeat is not None else now
        windows.append(Outage(start=instant(seconds(start))))
        return windows[-OUTAGE_LIMIT:]
    if not unreachable and open_ is not None:
        end = max(seconds(now), seconds(open_.start))
        windows[-1] = Outage(start=open_.start, end=instant(end))
        return windows
    return None


def windows(current: Sequence[Outage] | None) -> list[tuple[int, int | None]]:
    """Outage windows as Unix seconds, for :class:`~kommons.metering.acceptance.Facts`."""
    return [(seconds(o.start), seconds(o.end) if o.end else None) for o in current or ()]


_OUTAGES = TypeAdapter(list[Outage])


def parse_outages(body: Mapping[str, Any]) -> list[Outage] | None:
    """``status.outages`` of a Provider body; ``None`` when absent or unreadable.

    Read on its own, so a provider whose (agent-written) inventory is malformed cannot make
    the hub forget its outages.
    """
    status = body.get("status")
    raw = status.get("outages") if isinstance(status, Mapping) else None
    if raw is None:
        return None
    try:
        return _OUTAGES.validate_python(raw)
    except ValidationError:
        return None
