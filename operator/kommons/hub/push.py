"""Push mode: the hub runs the agent loop of each ``Push`` provider, in-process.

The same code as ``kommons agent`` (:func:`kommons.agent.runner.serve` with its
:class:`~kommons.agent.runner.Agent`) runs in a thread of its own per Push provider, with its
own event loop: kopf supports several operators in one process only in isolated event loops
(an operator that stops cancels every task of its loop created after it started).

Same trust boundary as a pull agent: on the hub the agent acts as the provider's ServiceAccount
``kommons-provider-<name>:kommons-agent``, with a short-lived token the hub requests for it
(TokenRequest) and renews before it expires, so RBAC and the admission policies apply to it
exactly as to a pull agent. The hub's own credentials only read the kubeconfig Secret, request
that token and write the ``PushAgent`` condition.

:class:`PushAgents` is started by the hub operator's startup (so only the acting hub runs push
agents) and reconciles every :attr:`PushOptions.check_seconds`: read each Push provider's
Secret, probe its cluster, start / restart / stop agents (decided by
:func:`kommons.hub.push_plan.plan_agents`), write the condition. Stopping an agent never touches
the workloads it ran (fail safe); a provider whose agent is stopped stops heartbeating.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import kopf

from kommons.agent.config import AgentConfig
from kommons.agent.hub_link import HubLink
from kommons.agent.provider_cluster import ProviderCluster
from kommons.agent.runner import Agent, AgentOptions, serve
from kommons.api import Provider
from kommons.api_names import provider_namespace
from kommons.hub.market_view import MarketView
from kommons.hub.push_plan import (
    Problem,
    Resolution,
    Target,
    condition_patch,
    plan_agents,
    resolve,
    restart_delay,
    running_message,
    unreachable,
)
from kommons.kube import Kube, KubeError, NotFound
from kommons.kube import resources as r
from kommons.kube.credentials import (
    KubeconfigError,
    ServiceAccountToken,
    bearer_kube,
    kube_from_text,
    whoami,
)
from kommons.kube.login import bearer_connection_info
from kommons.trust.policies import AGENT_SERVICE_ACCOUNT

log = logging.getLogger("kommons.hub.push")
STABLE_SECONDS = 60.0
"""An agent that ran this long before dying is restarted without back-off."""


@dataclass(frozen=True)
class PushOptions:
    """How the hub runs push agents."""

    check_seconds: float = 5.0
    """How often Secrets are read, clusters probed and agents started or stopped."""
    heartbeat_seconds: float = 5.0
    """The push agents' heartbeat period."""
    report_seconds: float = 5.0
    """The push agents' inventory and placement report period."""
    token_seconds: int = 3600
    """Lifetime asked for each agent token (renewed at 80 % of it)."""
    probe_timeout: float = 5.0
    """Seconds the provider cluster has to answer a probe."""
    unreachable_after: int = 2
    """Consecutive failed probes after which a running agent is stopped."""
    stop_seconds: float = 10.0
    """How long the hub, stopping, waits for its push agents to stop."""

    @classmethod
    def for_timeout(cls, heartbeat_timeout: float) -> PushOptions:
        """Options whose heartbeat fits the hub's heartbeat timeout (a quarter of it, <= 5 s)."""
        period = min(5.0, heartbeat_timeout / 4)
        return cls(heartbeat_seconds=period, report_seconds=period)


def agent_hub_kube(
    hub: Kube, provider: str, *, token_seconds: int = 3600
) -> tuple[Kube, ServiceAccountToken]:
    """The hub client a push agent uses: the hub's URL and CA, the agent's own token.

    Raises :class:`~kommons.kube.NotFound` when the provider was not onboarded (no
    ServiceAccount to request a token for).
    """
    tokens = ServiceAccountToken(
        hub, provider_namespace(provider), AGENT_SERVICE_ACCOUNT, seconds=token_seconds
    )
    kube = bearer_kube(hub, tokens.token, field_manager=f"kommons-agent-{provider}")
    return kube, tokens


@dataclass
class _Prepared:
    """Everything an agent thread needs, built (and checked) before it starts."""

    agent: Agent
    hub: Kube
    tokens: ServiceAccountToken
    username: str


class AgentThread:
    """One push agent: :func:`serve` in a thread with its own event loop."""

    def __init__(self, provider: str, target: Target, prepared: _Prepared) -> None:
        self.provider = provider
        self.target = target
        self.prepared = prepared
        self.error: str | None = None
        self.started = 0.0
        """When it was started (monotonic)."""
        self.confirmed = False
        """Still alive at the supervisor's next check: only then is it reported running."""
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"push-{provider}", daemon=True)

    def start(self) -> None:
        """Start the agent loop."""
        self.started = time.monotonic()
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the agent loop still runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the agent loop to stop (kopf stops gracefully); returns at once."""
        self._stopping.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)

    def join(self, timeout: float) -> None:
        """Wait for the agent loop to end."""
        self._thread.join(timeout)

    def _login(self) -> kopf.ConnectionInfo:
        tokens = self.prepared.tokens
        token = tokens.token()
        return bearer_connection_info(self.prepared.hub, token, expiration=tokens.renew_at)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # recorded for the condition; the supervisor restarts it
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("push agent of provider %s failed", self.provider)
        else:
            if not self._stopping.is_set():
                self.error = "the agent loop ended by itself"

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stopping.is_set():
            return
        log.info(
            "push agent of provider %s starting against %s as %s",
            self.provider,
            self.target.server,
            self.prepared.username,
        )
        await serve(
            self.prepared.agent, self._stop, login=self._login, register=False, embedded=True
        )
        log.info("push agent of provider %s stopped", self.provider)


class PushAgents:
    """Runs, restarts and stops the hub's in-process agents of Push providers."""

    def __init__(self, hub: Kube, view: MarketView, options: PushOptions | None = None) -> None:
        self.hub = hub
        self.view = view
        self.options = options or PushOptions()
        self.agents: dict[str, AgentThread] = {}
        self._probes: dict[str, tuple[str, Kube]] = {}
        """Provider → (fingerprint, client of its cluster) used to probe it."""
        self._failed_probes: dict[str, int] = {}
        self._failures: dict[str, Problem] = {}
        """Why an agent could not start or died, kept until it runs again."""
        self._crashes: dict[str, int] = {}
        """Provider → how many times in a row its agent died soon after starting."""
        self._not_before: dict[str, tuple[str, float]] = {}
        """Provider → (fingerprint, monotonic time): a died agent is not started again with the
        same target before then."""

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Reconcile until cancelled (the hub stopping); then stop every agent.

        Args:
            ready: Set once the hub's view is populated; nothing is decided before.
        """
        if ready is not None:
            await ready.wait()
        try:
            while True:
                try:
                    await self.step()
                except Exception:
                    log.exception("push agents: step failed; retrying")
                await asyncio.sleep(self.options.check_seconds)
        finally:
            # the hub is stopping: let every agent's kopf stop gracefully, for a bounded time
            for agent in self.agents.values():
                agent.stop()
            deadline = time.monotonic() + self.options.stop_seconds
            for agent in self.agents.values():
                agent.join(max(0.0, deadline - time.monotonic()))

    async def step(self) -> None:
        """One reconciliation of every Push provider."""
        providers = {n: p for n, p in self.view.providers.items() if p.spec.mode == "Push"}
        wanted: dict[str, Resolution] = {}
        for name, provider in providers.items():
            wanted[name] = await asyncio.to_thread(self._resolve, provider)
        now = time.monotonic()
        for name, agent in list(self.agents.items()):
            if agent.alive:  # it survived a whole check: it runs
                agent.confirmed = True
                self._failures.pop(name, None)
            else:
                del self.agents[name]
                why = f"the agent loop stopped: {agent.error}"
                self._failures[name] = Problem("AgentFailed", why)
                crashes = 0 if now - agent.started > STABLE_SECONDS else self._crashes.get(name, 0)
                self._crashes[name] = crashes + 1
                delay = restart_delay(crashes, self.options.check_seconds)
                self._not_before[name] = (agent.target.fingerprint, now + delay)
                log.warning("push agent of provider %s died (%s); restarting later", name, why)
        plan = plan_agents(wanted, {n: a.target.fingerprint for n, a in self.agents.items()})
        for name in plan.stop:
            agent = self.agents.pop(name)
            log.info("stopping push agent of provider %s", name)
            agent.stop()
            await asyncio.to_thread(agent.join, 30.0)
        for name, target in plan.start.items():
            died, not_before = self._not_before.get(name, ("", 0.0))
            if died == target.fingerprint and time.monotonic() < not_before:
                continue  # it died recently with this very target: back off
            prepared = await asyncio.to_thread(self._prepare, providers[name], target)
            if isinstance(prepared, Problem):
                self._failures[name] = prepared
                log.warning("push agent of provider %s not started: %s", name, prepared.message)
                continue
            agent = AgentThread(name, target, prepared)
            agent.start()
            self.agents[name] = agent
        remembered = set(self._probes) | set(self._failures) | set(self._not_before)
        for name in remembered - set(providers):  # no longer a push provider: forget it
            for memory in (self._probes, self._failed_probes, self._failures):
                memory.pop(name, None)
            self._crashes.pop(name, None)
            self._not_before.pop(name, None)
        await self._write_conditions(wanted)

    # --- reading the world (in threads) -------------------------------------------------

    def _resolve(self, provider: Provider) -> Resolution:
        name = str(provider.metadata.name)
        ref = provider.spec.kubeconfig_secret_ref
        secret = None
        if ref is not None:
            try:
                secret = self.hub.get_or_none(r.SECRETS, ref.name, ref.namespace)
            except KubeError as exc:
                return Problem("SecretUnreadable", f"spec.kubeconfigSecretRef: {exc.message}")
        resolution = resolve(provider, secret)
        if isinstance(resolution, Problem):
            return resolution
        error = self._probe(name, resolution)
        if error is None:
            self._failed_probes.pop(name, None)
            return resolution
        failures = self._failed_probes.get(name, 0) + 1
        self._failed_probes[name] = failures
        running = self.agents.get(name)
        if running is not None and failures < self.options.unreachable_after:
            return running.target  # one missed probe does not stop a running agent
        return unreachable(provider, resolution, error)

    def _probe(self, name: str, target: Target) -> str | None:
        """``None`` when the provider cluster answers ``/version``, else why not."""
        cached = self._probes.get(name)
        if cached is None or cached[0] != target.fingerprint:
            try:
                kube = kube_from_text(target.kubeconfig, field_manager="kommons-agent", retries=0)
            except KubeconfigError as exc:
                return str(exc)
            cached = (target.fingerprint, kube)
            self._probes[name] = cached
        try:
            cached[1].request("GET", "/version", timeout=self.options.probe_timeout)
        except KubeError as exc:
            if exc.status in (401, 403):
                return f"it refused the kubeconfig's credentials ({exc.status} {exc.reason})"
            return f"{exc.status} {exc.reason}: {exc.message}"
        except Exception as exc:  # connection refused, TLS, DNS, timeout
            return _short(exc)
        return None

    def _prepare(self, provider: Provider, target: Target) -> _Prepared | Problem:
        """The agent's clients, with its identity on the hub checked by the hub's API server."""
        name = str(provider.metadata.name)
        try:
            hub, tokens = agent_hub_kube(self.hub, name, token_seconds=self.options.token_seconds)
            username = whoami(hub)
        except NotFound:
            return Problem(
                "NotOnboarded",
                f"provider {name} is not onboarded: no ServiceAccount"
                f" {provider_namespace(name)}/{AGENT_SERVICE_ACCOUNT} on the hub; run"
                f" `kommons onboard {name} --mode Push --kubeconfig-secret NAMESPACE/NAME`",
            )
        except KubeError as exc:
            why = f"no token for the agent of {name}: {exc.message}"
            return Problem("TokenRequestFailed", why)
        if username != tokens.username:
            why = f"the agent's token authenticates as {username!r}, not {tokens.username}"
            return Problem("WrongIdentity", why)
        try:
            cluster = kube_from_text(target.kubeconfig, field_manager="kommons-agent")
        except KubeconfigError as exc:
            return Problem("InvalidKubeconfig", f"spec.kubeconfigSecretRef: {exc}")
        spec = provider.spec
        config = AgentConfig(
            payout_address=spec.payout_address,
            pricing=spec.pricing,
            offer=spec.offer,
            heartbeat_seconds=self.options.heartbeat_seconds,
            report_seconds=self.options.report_seconds,
        )
        options = AgentOptions(provider=name, hub_kubeconfig=None, kubeconfig=None, config=config)
        agent = Agent(options, hub=HubLink(hub, name, config), cluster=ProviderCluster(cluster))
        return _Prepared(agent=agent, hub=hub, tokens=tokens, username=username)

    # --- the condition --------------------------------------------------------------------

    def _wanted_condition(
        self, name: str, resolution: Resolution | None
    ) -> tuple[str, str, str] | None:
        if resolution is None:
            return None
        if isinstance(resolution, Problem):
            return ("False", resolution.reason, resolution.message)
        agent = self.agents.get(name)
        if agent is not None and agent.confirmed:
            return ("True", "AgentRunning", running_message(agent.target, agent.prepared.username))
        failure = self._failures.get(name)  # kept while a restarted agent is not confirmed
        if failure is not None:
            return ("False", failure.reason, failure.message)
        return ("False", "AgentStarting", "the hub is starting this provider's agent")

    async def _write_conditions(self, wanted: dict[str, Resolution]) -> None:
        now = datetime.now(UTC)
        for name, provider in list(self.view.providers.items()):
            condition = self._wanted_condition(name, wanted.get(name))
            patch = condition_patch(provider, condition, now=now)
            if patch is None:
                continue
            try:
                body = await asyncio.to_thread(
                    self.hub.patch, r.PROVIDERS, name, {"status": patch}, subresource="status"
                )
            except KubeError as exc:
                log.warning("provider %s: PushAgent condition not written: %s", name, exc)
                continue
            log.info(
                "provider %s: PushAgent %s",
                name,
                f"{condition[0]} {condition[1]}: {condition[2]}" if condition else "removed",
            )
            self.view.set_provider(body)


_CONNECTION_ERRORS = {
    "Connection refused": "connection refused",
    "timed out": "timed out",
    "Name or service not known": "unknown host name",
    "CERTIFICATE_VERIFY_FAILED": "its TLS certificate is not trusted by the kubeconfig's CA",
}


def _short(exc: Exception) -> str:
    """The innermost reason of a connection error, without the client library's noise."""
    text = str(exc)
    for marker, meaning in _CONNECTION_ERRORS.items():
        if marker in text:
            return meaning
    return f"{type(exc).__name__}: {text[:200]}"
