"""The whole bed: one etcd, a hub cluster, N provider clusters with kwok nodes, and anvil.

:class:`Testbed` brings it up (clusters in parallel), attaches to a running one from its state
file, stops it, and offers the fault helpers tests need (stop/start an apiserver in place,
SIGKILL or restart one process).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from kubernetes import client

from kommons_testbed import cluster, etcd, kube, kwok, nodes, pki, tools
from kommons_testbed.config import DEFAULT_HARDWARE_FILE, load_hardware, provider_specs
from kommons_testbed.handles import ChainHandle, ClusterHandle, PrometheusHandle, ProviderSpec
from kommons_testbed.kubeconfig import KubeconfigEntry, render
from kommons_testbed.launch import http_ok
from kommons_testbed.launch import start as launch_start
from kommons_testbed.processes import BedError, ProcessRecord, is_alive, kill, stop
from kommons_testbed.state import BedState, ClusterState, load_state

DIR_ENV = "KOMMONS_TESTBED_DIR"
"""Environment variable overriding the bed's directory."""
MARKER = ".kommons-testbed"
"""File marking a directory as a bed's (only such directories are ever removed)."""
MERGED_KUBECONFIG = "kubeconfig"
"""Merged kubeconfig (one context per cluster) in the bed's directory."""

Progress = Callable[[str], None]

_COMPONENT_KINDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

# Stop order: consumers of an apiserver first (adopted processes too), etcd last.
_STOP_TIERS = (
    ("kwok", "kube-scheduler", "kube-controller-manager", "prometheus", "anvil"),
    ("kube-apiserver",),
    ("etcd",),
)


def default_dir() -> Path:
    """Return ``$KOMMONS_TESTBED_DIR`` or ``<repo>/.testbed``."""
    env = os.environ.get(DIR_ENV)
    return Path(env).resolve() if env else tools.REPO_ROOT / ".testbed"


def _quiet(_: str) -> None:
    pass


class Testbed:
    """A running bed, created by :meth:`up` or attached to with :meth:`load`."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, state: BedState) -> None:
        self._state = state
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- life cycle

    @classmethod
    def up(
        cls,
        directory: Path | None = None,
        *,
        providers: int = 3,
        hardware: Path = DEFAULT_HARDWARE_FILE,
        chain: bool = True,
        progress: Progress = _quiet,
    ) -> Testbed:
        """Start a bed in ``directory`` (default :func:`default_dir`) and wait until it is ready.

        Args:
            directory: state directory; created, and must not hold a running bed.
            providers: number of provider clusters.
            hardware: the providers' simulated hardware (``providers.yaml`` format).
            chain: also start anvil (``False`` only for debugging the Kubernetes part).
            progress: called with one human-readable line per step.

        Raises:
            BedError: a bed already runs there, a binary is missing, or a component failed
                (everything started is stopped again; logs stay in ``<dir>/logs``).
        """
        directory = (directory or default_dir()).resolve()
        specs = provider_specs(load_hardware(hardware), providers)
        needed: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-controller-manager")
        if providers:
            needed += ("kube-scheduler", "kwok")
        tools.check_binaries(needed)
        start_anvil = _anvil_starter() if chain else None
        with bed_lock(directory):
            _claim_dir(directory, progress)
            return _Startup(directory, specs, start_anvil, progress).run()

    @classmethod
    def load(cls, directory: Path | None = None) -> Testbed:
        """Attach to the bed whose state is in ``directory`` (it is not checked for health)."""
        directory = (directory or default_dir()).resolve()
        state = load_state(directory)
        if state is None:
            raise BedError(f"no bed in {directory}: run `make testbed-up` first")
        return cls(state)

    def down(self, *, progress: Progress = _quiet) -> None:
        """Stop exactly the processes this bed started (by pid) and remove its directory."""
        stop_all(self._state.processes.values(), progress=progress)
        _remove_dir(self._state.dir)

    # ----------------------------------------------------------------- handles

    @property
    def dir(self) -> Path:
        """The bed's state directory."""
        return self._state.dir

    @property
    def state(self) -> BedState:
        """The bed's recorded state (pids, ports, argv)."""
        return self._state

    @property
    def hub(self) -> ClusterHandle:
        """The hub cluster."""
        return self._state.hub.handle()

    @property
    def providers(self) -> dict[str, ClusterHandle]:
        """The provider clusters by name (``prov-a`` ...), in bed order."""
        return {n: c.handle() for n, c in self._state.providers.items()}

    @property
    def clusters(self) -> dict[str, ClusterHandle]:
        """Every cluster by name, hub first."""
        return {n: c.handle() for n, c in self._state.clusters.items()}

    @property
    def chain(self) -> ChainHandle:
        """The anvil node (an error if the bed was started without it)."""
        if self._state.chain is None:
            raise BedError(f"the bed in {self.dir} runs no chain node (started with --no-chain)")
        return self._state.chain

    @property
    def prometheus(self) -> PrometheusHandle | None:
        """The Prometheus started with :meth:`start_prometheus`, if any."""
        return self._state.prometheus

    @property
    def merged_kubeconfig(self) -> Path:
        """Kubeconfig with one context per cluster (``hub``, ``prov-a`` ...)."""
        return self.dir / MERGED_KUBECONFIG

    def cluster(self, name: str) -> ClusterHandle:
        """Return the cluster called ``name``; a clear error for unknown names."""
        try:
            return self._state.clusters[name].handle()
        except KeyError:
            raise BedError(
                f"no cluster {name!r} in the bed; clusters: {list(self._state.clusters)}"
            ) from None

    def api_client(self, cluster_name: str) -> client.ApiClient:
        """Return a new admin :class:`kubernetes.client.ApiClient` for ``cluster_name``."""
        return kube.handle_client(self.cluster(cluster_name))

    def process(self, name: str) -> ProcessRecord:
        """Return the record of component ``name`` (``etcd``, ``prov-b/kwok``, ``anvil`` ...)."""
        try:
            return self._state.processes[name]
        except KeyError:
            raise BedError(
                f"no component {name!r}; components: {sorted(self._state.processes)}"
            ) from None

    # ----------------------------------------------------------------- health

    def problems(self) -> list[str]:
        """Return what is wrong (dead processes, apiservers not ready); empty when healthy."""
        found = [
            f"{name} (pid {rec.pid}) is not running"
            for name, rec in self._state.processes.items()
            if self.is_component(name) and not is_alive(rec.pid)
        ]
        for c in self._state.clusters.values():
            if not http_ok(f"{c.server}/readyz", token=c.admin_token, ca_file=c.ca_file):
                found.append(f"{c.name} apiserver {c.server} is not ready")
        return found

    def healthy(self) -> bool:
        """Whether every process runs and every apiserver answers ``/readyz``."""
        return not self.problems()

    # ----------------------------------------------------------------- faults

    def stop_apiserver(self, cluster_name: str) -> None:
        """Stop ``cluster_name``'s kube-apiserver (SIGTERM, then SIGKILL); etcd keeps the data."""
        self.cluster(cluster_name)
        stop(self.process(cluster.component(cluster_name, "kube-apiserver")))

    def start_apiserver(self, cluster_name: str, *, timeout: float = 90.0) -> None:
        """Start ``cluster_name``'s kube-apiserver again on the same port, on the same etcd data."""
        self.cluster(cluster_name)
        name = cluster.component(cluster_name, "kube-apiserver")
        if is_alive(self.process(name).pid):
            raise BedError(f"{name} is already running (pid {self.process(name).pid})")
        self._respawn(name, timeout=timeout)

    def kill(self, component: str) -> None:
        """SIGKILL one process (a crash), e.g. ``prov-b/kwok`` or ``hub/kube-apiserver``."""
        kill(self.process(component))

    def restart(self, component: str, *, timeout: float = 90.0) -> None:
        """Stop one process (SIGTERM, SIGKILL fallback) and start it again with the same argv.

        A restarted ``<provider>/kwok`` would wait for the node leases held by its predecessor
        to expire (40 s) before it manages the nodes again; the leases are deleted first so
        it takes over at once.
        """
        if component == "anvil":
            raise BedError("anvil keeps its chain in memory and cannot be restarted in place")
        stop(self.process(component))
        cluster_name, _, kind = component.rpartition("/")
        if kind == "kwok":
            self._release_node_leases(cluster_name)
        self._respawn(component, timeout=timeout)

    def _release_node_leases(self, cluster_name: str) -> None:
        api = self.api_client(cluster_name)
        try:
            leases = client.CoordinationV1Api(api)
            for node in self._state.clusters[cluster_name].nodes:
                with contextlib.suppress(client.ApiException):
                    leases.delete_namespaced_lease(node, "kube-node-lease")
        finally:
            api.close()  # type: ignore[no-untyped-call]

    def _respawn(self, name: str, *, timeout: float) -> None:
        old = self.process(name)
        record, _ = launch_start(
            name,
            lambda _: old.argv,
            log=old.log,
            ready=lambda _: self._ready(name, old.argv),
            timeout=timeout,
        )
        with self._lock:
            self._state.processes[name] = record
            self._state.save()

    def _ready(self, name: str, argv: Sequence[str]) -> bool:
        kind = name.rsplit("/", 1)[-1]
        if kind == "kube-apiserver":
            c = self._state.clusters[name.split("/", 1)[0]]
            return http_ok(f"{c.server}/readyz", token=c.admin_token, ca_file=c.ca_file)
        if kind == "kube-scheduler":
            port = _flag(argv, "--secure-port")
            return http_ok(f"https://127.0.0.1:{port}/readyz", insecure=True)
        if kind == "etcd":
            return http_ok(f"{self._state.etcd_url}/health")
        return True

    def is_component(self, name: str) -> bool:
        """Whether ``name`` is one of the bed's own components (not an adopted process)."""
        if name in ("etcd", "anvil", "prometheus"):
            return True
        cluster_name, _, kind = name.rpartition("/")
        return cluster_name in self._state.clusters and kind in _COMPONENT_KINDS

    def adopt(self, record: ProcessRecord) -> None:
        """Record a process started on top of the bed so that ``down`` stops it too.

        For operators, agents and the like: ``make testbed-down`` then stops them (first,
        before the apiservers) instead of leaving them orphaned. Adopting a name again
        replaces the record (a restarted process). Adopted processes do not count in
        :meth:`problems`.
        """
        if self.is_component(record.name):
            raise BedError(f"{record.name!r} is a bed component; adopt under another name")
        with self._lock:
            self._state.processes[record.name] = record
            self._state.save()

    def disown(self, name: str) -> None:
        """Forget an adopted process (after its owner stopped it)."""
        with self._lock:
            self._state.processes.pop(name, None)
            self._state.save()

    # ----------------------------------------------------------------- prometheus

    def start_prometheus(self, scrape_targets: list[str]) -> PrometheusHandle:
        """Start a real Prometheus scraping ``host:port`` targets; ``down`` stops it too."""
        if self._state.prometheus is not None and is_alive(self.process("prometheus").pid):
            raise BedError(f"Prometheus already runs at {self._state.prometheus.url}")
        try:
            from kommons_testbed.prometheus import start_prometheus
        except ImportError as exc:
            raise BedError(f"Prometheus support is not available: {exc}") from None
        record, handle = start_prometheus(self.dir, scrape_targets)
        with self._lock:
            self._state.processes["prometheus"] = record
            self._state.prometheus = handle
            self._state.save()
        return handle

    def stop_prometheus(self) -> None:
        """Stop the Prometheus of :meth:`start_prometheus` (if any) and forget it."""
        record = self._state.processes.get("prometheus")
        if record is not None:
            stop(record)
        with self._lock:
            self._state.processes.pop("prometheus", None)
            self._state.prometheus = None
            self._state.save()


def _flag(argv: Sequence[str], flag: str) -> str:
    for arg in argv:
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise BedError(f"{flag} missing from {argv[0]}'s command line")


# --------------------------------------------------------------------- start-up


AnvilStarter = Callable[[Path], tuple[ProcessRecord, ChainHandle]]


def _anvil_starter() -> AnvilStarter:
    try:
        from kommons_testbed.anvil import start_anvil
    except ImportError as exc:
        raise BedError(
            f"the chain node cannot be started: kommons_testbed.anvil is not available ({exc}); "
            "use --no-chain to start only the clusters"
        ) from None
    return start_anvil


class _Startup:
    """One ``up``: starts components in parallel and records each in the state file at once."""

    def __init__(
        self,
        directory: Path,
        specs: tuple[ProviderSpec, ...],
        start_anvil: AnvilStarter | None,
        progress: Progress,
    ) -> None:
        self.dir = directory
        self.specs = specs
        self.start_anvil = start_anvil
        self.progress = progress
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.state = BedState(
            dir=directory, etcd_url="", clusters={}, processes={}, started_at=time.time()
        )

    def say(self, text: str) -> None:
        self.progress(f"[{time.monotonic() - self.t0:5.1f}s] {text}")

    def record(self, rec: ProcessRecord) -> None:
        with self.lock:
            self.state.processes[rec.name] = rec
            self.state.save()

    def run(self) -> Testbed:
        names = ["hub", *(s.name for s in self.specs)]
        self.say(
            f"starting a bed in {self.dir}: etcd, hub, {len(self.specs)} provider(s) "
            f"{[s.name for s in self.specs]}" + (", anvil" if self.start_anvil else "")
        )
        try:
            with ThreadPoolExecutor(max_workers=4 * len(names) + 4) as pool:
                chain_future = pool.submit(self._anvil) if self.start_anvil else None
                pki_future = pool.submit(self._pki, names, pool)
                self._etcd()
                cluster_pki = pki_future.result()
                futures = [pool.submit(self._hub, cluster_pki["hub"])]
                futures += [
                    pool.submit(self._provider, pool, cluster_pki[s.name], s) for s in self.specs
                ]
                for f in futures:
                    f.result()
                if chain_future:
                    self.state.chain = chain_future.result()
        except BaseException:
            self.say("start-up failed; stopping what was started")
            stop_all(self.state.processes.values(), progress=self.say)
            (self.dir / "state.json").unlink(missing_ok=True)
            raise
        self.state.clusters = {n: self.state.clusters[n] for n in names}  # bed order
        self._write_merged_kubeconfig()
        self.state.startup_seconds = round(time.monotonic() - self.t0, 2)
        self.state.save()
        self.say(f"bed ready in {self.state.startup_seconds:.1f}s")
        return Testbed(self.state)

    def _timed(self, what: str, fn: Callable[[], object]) -> object:
        t = time.monotonic()
        self.say(f"starting {what}...")
        result = fn()
        self.say(f"{what} ready in {time.monotonic() - t:.1f}s")
        return result

    def _anvil(self) -> ChainHandle:
        assert self.start_anvil is not None
        start_anvil = self.start_anvil
        t = time.monotonic()
        self.say("starting anvil...")
        rec, handle = start_anvil(self.dir)
        self.record(rec)
        self.say(f"anvil ready in {time.monotonic() - t:.1f}s at {handle.rpc_url}")
        return handle

    def _pki(self, names: list[str], pool: ThreadPoolExecutor) -> dict[str, pki.ClusterPki]:
        t = time.monotonic()
        pki_dir = self.dir / "pki"
        pki.make_ca(pki_dir)
        futures = {
            n: pool.submit(pki.make_cluster_pki, pki_dir, n, service_ip=cluster.SERVICE_IP)
            for n in names
        }
        made = {n: f.result() for n, f in futures.items()}
        self.say(f"certificates and keys made with openssl in {time.monotonic() - t:.1f}s")
        return made

    def _etcd(self) -> None:
        t = time.monotonic()
        self.say("starting etcd...")
        rec, url = etcd.start_etcd(self.dir)
        self.state.etcd_url = url
        self.record(rec)
        self.say(f"etcd ready in {time.monotonic() - t:.1f}s at {url}")

    def _control_plane(self, name: str, the_pki: pki.ClusterPki) -> cluster.ClusterFiles:
        files = cluster.prepare(self.dir, name, the_pki)
        t = time.monotonic()
        self.say(f"{name}: starting kube-apiserver...")
        rec, port = cluster.start_apiserver(self.dir, files, etcd_url=self.state.etcd_url)
        self.record(rec)
        server = f"https://127.0.0.1:{port}"
        admin = self.dir / f"{name}.kubeconfig"
        cluster.write_kubeconfigs(files, server, admin)
        with self.lock:
            self.state.clusters[name] = ClusterState(
                name=name,
                role="hub" if name == "hub" else "provider",
                port=port,
                etcd_prefix=cluster.etcd_prefix(name),
                kubeconfig=admin,
                ca_file=the_pki.ca_cert,
                admin_token=files.tokens["admin"],
            )
            self.state.save()
        self.say(f"{name}: kube-apiserver ready in {time.monotonic() - t:.1f}s at {server}")
        return files

    def _controller_manager(self, files: cluster.ClusterFiles) -> None:
        t = time.monotonic()
        server = self.state.clusters[files.name].server
        rec = cluster.start_controller_manager(self.dir, files, server)
        self.record(rec)
        self.say(f"{files.name}: kube-controller-manager ready in {time.monotonic() - t:.1f}s")

    def _hub(self, the_pki: pki.ClusterPki) -> None:
        files = self._control_plane("hub", the_pki)
        self._controller_manager(files)

    def _provider(
        self, pool: ThreadPoolExecutor, the_pki: pki.ClusterPki, spec: ProviderSpec
    ) -> None:
        files = self._control_plane(spec.name, the_pki)
        t = time.monotonic()
        jobs: list[Future[None]] = [
            pool.submit(self._controller_manager, files),
            pool.submit(self._scheduler, files),
        ]
        self.record(kwok.start_kwok(self.dir, files))
        api = kube.api_client(
            self.state.clusters[spec.name].server,
            ca_file=the_pki.ca_cert,
            token=files.tokens["admin"],
        )
        try:
            nodes.create_nodes(api, spec)
            for job in jobs:
                job.result()
            nodes.wait_nodes_ready(api, spec, timeout=60)
        finally:
            api.close()  # type: ignore[no-untyped-call]
        with self.lock:
            self.state.clusters[spec.name].region = spec.region
            self.state.clusters[spec.name].nodes = [n.name for n in spec.nodes]
            self.state.save()
        self.say(
            f"{spec.name}: kwok + {len(spec.nodes)} node(s) in {spec.region} Ready "
            f"in {time.monotonic() - t:.1f}s"
        )

    def _scheduler(self, files: cluster.ClusterFiles) -> None:
        t = time.monotonic()
        self.record(cluster.start_scheduler(self.dir, files))
        self.say(f"{files.name}: kube-scheduler ready in {time.monotonic() - t:.1f}s")

    def _write_merged_kubeconfig(self) -> None:
        entries = [
            KubeconfigEntry(c.name, c.server, c.ca_file.read_bytes(), c.admin_token)
            for c in self.state.clusters.values()
        ]
        path = self.dir / MERGED_KUBECONFIG
        path.write_text(render(entries, current="hub"))
        path.chmod(0o600)
        self.state.merged_kubeconfig = path


# --------------------------------------------------------------------- stopping, the directory


def _tier(name: str) -> int:
    kind = name.rsplit("/", 1)[-1]
    for i, tier in enumerate(_STOP_TIERS):
        if kind in tier:
            return i
    return 0


def stop_all(records: Iterable[ProcessRecord], *, progress: Progress = _quiet) -> None:
    """Stop ``records`` by pid, consumers first and etcd last, each tier in parallel."""
    recs = list(records)
    for tier in range(len(_STOP_TIERS)):
        batch = [r for r in recs if _tier(r.name) == tier]
        if not batch:
            continue
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            list(pool.map(lambda r: stop(r, timeout=10.0), batch))
        progress(f"stopped {', '.join(r.name for r in batch)}")


def running_processes(state: BedState) -> dict[str, ProcessRecord]:
    """Return the bed's processes that still run."""
    return {n: r for n, r in state.processes.items() if is_alive(r.pid)}


def _claim_dir(directory: Path, progress: Progress) -> None:
    """Make ``directory`` ready for a new bed, refusing if a bed runs there."""
    state = load_state(directory) if (directory / "state.json").exists() else None
    if state is not None:
        alive = running_processes(state)
        if alive:
            where = f" (hub at {state.hub.server})" if "hub" in state.clusters else ""
            raise BedError(
                f"a bed is already running in {directory}{where}; run `make testbed-down` first"
            )
        progress(f"removing the state of a stopped bed in {directory}")
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise BedError(
                f"{directory} exists and is not a bed directory; choose another --dir "
                f"(or ${DIR_ENV}) or empty it"
            )
        _remove_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("state directory of a Kommons test bed; see docs/testbed.md\n")
    (directory / "logs").mkdir(exist_ok=True)


def _remove_dir(directory: Path) -> None:
    if directory.exists() and (directory / MARKER).exists():
        shutil.rmtree(directory)


def lock_file(directory: Path) -> Path:
    """Return the lock file of the bed in ``directory`` (in the temp dir, not in the repo)."""
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "kommons-testbed-locks" / f"{digest}.lock"


_held_locks: set[Path] = set()
_held_guard = threading.Lock()


@contextlib.contextmanager
def bed_lock(directory: Path, *, timeout: float = 0.0) -> Iterator[None]:
    """Hold the bed directory's lock: one ``up`` (or test-session attach decision) at a time.

    Re-entrant within a process (``Testbed.up`` inside a held lock does not deadlock).

    Args:
        directory: the bed's directory (the lock file is :func:`lock_file`).
        timeout: seconds to wait for another holder; 0 = fail at once.

    Raises:
        BedError: someone else holds the lock.
    """
    directory = directory.resolve()
    with _held_guard:
        reentrant = directory in _held_locks
    if reentrant:
        yield
        return
    lock_path = lock_file(directory)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BedError(
                        f"another process is starting a bed in {directory} right now; wait for it"
                    ) from None
                time.sleep(0.2)
        with _held_guard:
            _held_locks.add(directory)
        try:
            yield
        finally:
            with _held_guard:
                _held_locks.discard(directory)
            fcntl.flock(handle, fcntl.LOCK_UN)


def rss_kib(pid: int) -> int:
    """Return the resident set size of ``pid`` in KiB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


__all__ = [
    "DIR_ENV",
    "Testbed",
    "bed_lock",
    "default_dir",
    "rss_kib",
    "running_processes",
    "stop_all",
]
