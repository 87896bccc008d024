"""Shared pieces of the end-to-end benchmarks: bursts, watches, /proc figures, tables.

Nothing here asserts anything about time; it measures and prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from kommons.kube import Kube, KubeError
from kommons.kube import resources as r
from kommons.kube.resources import Resource
from kommons_testbed.bed import Testbed
from kommons_testbed.manifests import apply_market, apply_namespace, exists, lease_manifest
from kommons_testbed.stack import Stack, start_stack

JSON = dict[str, Any]
TENANT_LABEL = "kommons.io/tenant"
POOL = "bench"
ACCOUNT = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
T0 = time.monotonic()


def say(text: str) -> None:
    """Progress line on stderr (the tables go to stdout)."""
    print(f"[{time.monotonic() - T0:7.1f}s] {text}", file=sys.stderr, flush=True)


def save_logs(bed: Testbed) -> Path:
    """Copy the stack's logs (hub, agents, hollow) next to the bed dir before it is removed."""
    target = bed.dir.with_name(bed.dir.name + "-logs")
    shutil.rmtree(target, ignore_errors=True)
    if (bed.dir / "stack" / "logs").exists():
        shutil.copytree(bed.dir / "stack" / "logs", target)
        say(f"logs of the hub, agents and hollow fleet kept in {target}")
    return target


def load_average() -> str:
    """The 1-minute load average (the machine is shared; it says how much)."""
    return Path("/proc/loadavg").read_text().split()[0]


# ----------------------------------------------------------------------------- statistics


def time_to_fraction(
    stamps: Sequence[float], start: float, total: int, fraction: float
) -> float | None:
    """Seconds from ``start`` until ``fraction`` of ``total`` things had a stamp (or ``None``)."""
    need = max(1, int(total * fraction + 0.999999))
    ordered = sorted(stamps)
    return ordered[need - 1] - start if len(ordered) >= need else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(value: float | None) -> str:
    """Seconds as milliseconds for a table ("n/a" for ``None``)."""
    return "n/a" if value is None else f"{value * 1000:,.0f} ms"


def table(title: str, rows: Iterable[tuple[str, object]]) -> str:
    """A two-column text table."""
    rows = [(k, str(v)) for k, v in rows]
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- /proc


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (0 when gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (0 when gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Sampler:
    """Samples RSS of some processes every ``every`` seconds in a thread; keeps the peak."""

    def __init__(self, pids: Mapping[str, int], every: float = 0.5) -> None:
        self.pids = dict(pids)
        self.peak: dict[str, float] = dict.fromkeys(self.pids, 0.0)
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_mib(pid))
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------------- the API


def burst(
    create: Callable[[int], None], count: int, *, threads: int
) -> tuple[dict[int, float], float, dict[str, int]]:
    """Call ``create(i)`` for ``i < count`` from ``threads`` threads, as fast as they go.

    Returns the monotonic time each create *returned* (the object exists from then on), the
    wall time of the whole burst and the errors by kind.
    """
    created: dict[int, float] = {}
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        for attempt in range(5):
            try:
                create(i)
                break
            except KubeError as exc:
                key = f"{exc.status} {exc.reason}"
                with lock:
                    errors[key] = errors.get(key, 0) + 1
                if exc.status == 409:  # it exists: count it created
                    break
                time.sleep(0.2 * (attempt + 1))
        else:
            return
        with lock:
            created[i] = time.monotonic()

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(count)))
    return created, time.monotonic() - start, errors


@dataclass
class Watch:
    """List+watch of one collection in a thread; ``on_event(type, object, t)`` per event.

    Events are decoded from the raw stream (plain dicts, no model classes), stamped with
    ``time.monotonic()`` on arrival.
    """

    kube: Kube
    resource: Resource
    on_event: Callable[[str, JSON, float], None]
    namespace: str | None = None
    label_selector: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    errors: int = 0
    """Broken streams (each followed by a new list)."""
    lists: int = 0
    """Lists made: 1, plus one per broken stream. Objects found by a later list are stamped at
    that list's time, so many lists make the latencies upper bounds."""
    ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Watch:
        """Start watching; returns once the initial list is done."""
        self._thread.start()
        self.ready.wait(60)
        return self

    def close(self) -> None:
        """Stop watching (within the watch's time-out)."""
        self.stop.set()

    def _query(self, **extra: str) -> dict[str, str]:
        query = dict(extra)
        if self.label_selector:
            query["labelSelector"] = self.label_selector
        return query

    def _run(self) -> None:
        version = ""
        api = self.kube.api_client
        while not self.stop.is_set():
            try:
                if not version:
                    listed = self.kube.request(
                        "GET", self.resource.path(self.namespace), query=self._query()
                    )
                    now = time.monotonic()
                    self.lists += 1
                    for item in listed.get("items", []):
                        self.on_event("ADDED", item, now)
                    version = str(listed["metadata"]["resourceVersion"])
                    self.ready.set()
                query = self._query(
                    watch="true",
                    resourceVersion=version,
                    allowWatchBookmarks="true",
                    timeoutSeconds="30",
                )
                path = f"{self.resource.path(self.namespace)}?{urlencode(query)}"
                method, url, headers, _, _ = api.param_serialize(
                    method="GET",
                    resource_path=path,
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                )
                response = api.call_api(method, url, header_params=headers, _request_timeout=60)
                buffer = b""
                for chunk in response.response.stream(65536, decode_content=True):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR":
                            version = ""
                            break
                        version = str(obj["metadata"]["resourceVersion"])
                        if kind != "BOOKMARK":
                            self.on_event(kind, obj, time.monotonic())
                    if self.stop.is_set() or not version:
                        break
                response.response.release_conn()
            except Exception:  # a broken stream: list again and go on
                self.errors += 1
                version = ""
                self.stop.wait(0.5)


# ----------------------------------------------------------------------------- the market


def lease_body(name: str, namespace: str, *, cpu: str = "100m", memory: str = "64Mi") -> JSON:
    """A one-replica ComputeLease that Pod Security ``restricted`` admits."""
    return lease_manifest(
        name,
        namespace,
        pool=POOL,
        cpu=cpu,
        memory=memory,
        image="registry.k8s.io/pause:3.10",
        labels={"app": "bench"},
    )


def setup_market(hub: Kube, tenants: Sequence[str]) -> None:
    """A pool of every provider (LowestPrice), a billing account, the tenant namespaces."""
    selector = exists(TENANT_LABEL)
    apply_market(
        hub, pool=POOL, strategy="LowestPrice", tenants=selector, account=ACCOUNT, billed=selector
    )
    for tenant in tenants:
        apply_namespace(hub, tenant, {TENANT_LABEL: tenant})


def start_hub_stack(bed: Testbed, *, heartbeat_timeout: float) -> Stack:
    """The bed's stack (:func:`start_stack`) with the hub's ``--heartbeat-timeout`` set.

    The bed's stack uses 10 s for quick tests; with hundreds of providers on 2 shared cores a
    node Lease's 40 s is the fairer setting, and providers get 180 s to turn Ready.
    """
    return start_stack(
        bed, hub_args=("--heartbeat-timeout", str(heartbeat_timeout)), ready_timeout=180
    )


def providers_ready(hub: Kube) -> tuple[int, int]:
    """(Ready providers, all providers) on the hub."""
    items = hub.list(r.PROVIDERS)
    ready = sum(1 for p in items if (p.get("status") or {}).get("phase") == "Ready")
    return ready, len(items)


def wait_until(check: Callable[[], bool], *, timeout: float, every: float = 1.0) -> bool:
    """Poll ``check`` until true or ``timeout``; ``True`` when it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception as exc:  # the API may be busy; keep polling
            say(f"(still waiting: {exc})")
        time.sleep(every)
    return False


def apiserver_writes(kube: Kube) -> dict[tuple[str, str], float]:
    """``apiserver_request_total`` of the write verbs, by (verb, resource[/subresource])."""
    method, url, headers, _, _ = kube.api_client.param_serialize(
        method="GET", resource_path="/metrics", auth_settings=["BearerToken"]
    )
    response = kube.api_client.call_api(method, url, header_params=headers, _request_timeout=30)
    text = response.read().decode()  # type: ignore[no-untyped-call]
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        verb = labels.get("verb", "")
        if verb not in ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"):
            continue
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        key = (verb, resource)
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out
