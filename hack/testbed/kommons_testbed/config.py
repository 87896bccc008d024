"""The bed's simulated provider hardware: parse ``providers.yaml`` into :class:`ProviderSpec` s.

Pure: no processes, no network. The file format is documented in ``hack/testbed/providers.yaml``
and ``docs/testbed.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import yaml
from kubernetes.utils import parse_quantity as _parse_quantity
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kommons_testbed.handles import NodeSpec, ProviderSpec
from kommons_testbed.processes import BedError

_parse: Callable[[object], Decimal] = _parse_quantity

DEFAULT_HARDWARE_FILE = Path(__file__).resolve().parent.parent / "providers.yaml"
"""``hack/testbed/providers.yaml``: the hardware used when no other file is given."""

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NodePool(_Model):
    """``count`` identical kwok nodes of one provider."""

    name: Annotated[str, Field(pattern=_DNS_LABEL, max_length=30)]
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    cpu: str = "16"
    memory: str = "64Gi"
    pods: Annotated[int, Field(ge=1)] = 110
    gpus: Annotated[int, Field(ge=0)] = 0
    gpu_product: Annotated[str | None, Field(alias="gpuProduct")] = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, value: object) -> str:
        text = str(value)
        try:
            parsed = _parse(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a Kubernetes quantity") from exc
        if parsed <= 0:
            raise ValueError(f"{text!r} must be positive")
        return text

    def node_specs(self, provider: str) -> tuple[NodeSpec, ...]:
        """Expand the pool into one :class:`NodeSpec` per node, named ``<provider>-<pool>-<i>``."""
        if self.gpus and not self.gpu_product:
            raise BedError(f"provider {provider}, node pool {self.name}: gpus needs gpuProduct")
        return tuple(
            NodeSpec(
                name=f"{provider}-{self.name}-{i}",
                cpu=self.cpu,
                memory=self.memory,
                pods=self.pods,
                gpus=self.gpus,
                gpu_product=self.gpu_product,
                labels=dict(self.labels),
            )
            for i in range(self.count)
        )


class ProviderEntry(_Model):
    """One listed provider."""

    name: Annotated[str, Field(pattern=_DNS_LABEL, max_length=30)]
    region: Annotated[str, Field(min_length=1)]
    nodes: Annotated[list[NodePool], Field(min_length=1)]


class Generated(_Model):
    """Hardware of providers beyond the listed ones."""

    regions: Annotated[list[str], Field(min_length=1)] = ["eu-west"]
    cpu_nodes: Annotated[NodePool, Field(alias="cpuNodes")] = NodePool(name="cpu", count=2)
    gpu_nodes: Annotated[NodePool, Field(alias="gpuNodes")] = NodePool(
        name="gpu", count=1, gpus=2, gpu_product="nvidia-l4"
    )


class HardwareFile(_Model):
    """The whole ``providers.yaml``."""

    providers: list[ProviderEntry] = Field(default_factory=list)
    generated: Generated = Generated()


def provider_name(index: int) -> str:
    """Return the default name of the ``index``-th provider (0 → ``prov-a``, 26 → ``prov-aa``)."""
    if index < 0:
        raise ValueError("index must be >= 0")
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return f"prov-{letters}"


def parse_hardware(data: object, *, source: str = "<hardware>") -> HardwareFile:
    """Validate parsed YAML ``data`` as a hardware file; errors name ``source`` and the field."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise BedError(f"{source}: expected a mapping with 'providers', got {type(data).__name__}")
    try:
        hardware = HardwareFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise BedError(f"{source}: {problems}") from None
    names = [p.name for p in hardware.providers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BedError(f"{source}: duplicate provider names {duplicates}")
    if "hub" in names:
        raise BedError(f"{source}: 'hub' is reserved for the hub cluster")
    return hardware


def load_hardware(path: Path = DEFAULT_HARDWARE_FILE) -> HardwareFile:
    """Read and validate a hardware file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BedError(f"cannot read hardware file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BedError(f"{path}: not valid YAML: {exc}") from None
    return parse_hardware(data, source=str(path))


def provider_specs(hardware: HardwareFile, count: int) -> tuple[ProviderSpec, ...]:
    """Return the hardware of ``count`` providers: listed ones first, then generated ones."""
    if count < 0:
        raise BedError(f"--providers must be >= 0, got {count}")
    specs: list[ProviderSpec] = []
    taken = {p.name for p in hardware.providers}
    for entry in hardware.providers[:count]:
        nodes = tuple(n for pool in entry.nodes for n in pool.node_specs(entry.name))
        _check_unique_nodes(entry.name, nodes)
        specs.append(ProviderSpec(name=entry.name, region=entry.region, nodes=nodes))
    index = 0
    generated = hardware.generated
    while len(specs) < count:
        name = provider_name(index)
        index += 1
        if name in taken:
            continue
        taken.add(name)
        position = len(specs)
        region = generated.regions[position % len(generated.regions)]
        pool = generated.gpu_nodes if position % 2 else generated.cpu_nodes
        specs.append(ProviderSpec(name=name, region=region, nodes=pool.node_specs(name)))
    return tuple(specs)


def _check_unique_nodes(provider: str, nodes: tuple[NodeSpec, ...]) -> None:
    names = [n.name for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BedError(f"provider {provider}: duplicate node pool names give nodes {duplicates}")
