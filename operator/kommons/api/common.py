"""Building blocks shared by every Kommons kind.

Everything here is part of the API contract: the wire names (camelCase), the OpenAPI bounds
and the CEL admission rules that :mod:`kommons.crdgen` copies into the CRDs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# Re-exported for the API modules; defined once, in kommons.api_names.
from kommons.api_names import API_VERSION as API_VERSION
from kommons.api_names import GROUP as GROUP
from kommons.api_names import VERSION as VERSION
from kommons.quantity import is_positive_quantity

CATEGORY = "kommons"
"""``kubectl get kommons`` lists every kind in this category."""

# --------------------------------------------------------------------------------------
# CEL rules attached to pydantic types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cel:
    """One CEL rule, rendered into ``x-kubernetes-validations`` of the schema node it annotates.

    Use it in ``Annotated[...]`` metadata of a field type, or through :func:`cel_rules` in a
    model's ``json_schema_extra``. ``self`` in the rule is the annotated value.
    """

    rule: str
    """The CEL expression; it must evaluate to true for the object to be admitted."""
    message: str
    """What the user reads: names the field and says why it was refused."""
    field_path: str | None = None
    """JSON path (relative to the annotated node) of the field the error is reported on."""
    reason: str | None = None
    """``FieldValueInvalid`` (default), ``FieldValueForbidden``, ``FieldValueRequired`` ..."""

    def render(self) -> dict[str, str]:
        """Return the ``x-kubernetes-validations`` entry of this rule."""
        out = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.setdefault("x-kubernetes-validations", []).append(self.render())
        return schema


def cel_rules(*rules: Cel) -> dict[str, Any]:
    """Return a ``json_schema_extra`` mapping that attaches ``rules`` to a model's schema."""
    return {"x-kubernetes-validations": [r.render() for r in rules]}


def list_map(*keys: str) -> dict[str, Any]:
    """Return a ``json_schema_extra`` mapping that makes a list a map keyed by ``keys``."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


# --------------------------------------------------------------------------------------
# Base models
# --------------------------------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of spec-side API models: camelCase on the wire, snake_case in Python, strict."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    def to_api(self) -> dict[str, Any]:
        """Return the wire form: camelCase keys, JSON types, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Base of status-side models: unknown fields from the API server are ignored."""

    model_config = ConfigDict(extra="ignore")


class LooseModel(ApiModel):
    """A model that declares only the fields Kommons checks and keeps every other field.

    Its schema has ``additionalProperties: true``, which :mod:`kommons.crdgen` renders as
    ``x-kubernetes-preserve-unknown-fields: true``.
    """

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------------------
# Scalar types
# --------------------------------------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric."""
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""RFC 1123 subdomain: dot-separated DNS labels (names of most Kubernetes objects)."""
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
"""A Kubernetes label value (without the empty value)."""
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]{1,18})?$"
"""A non-negative decimal string with at most 18 fractional digits."""
DURATION_PATTERN = r"^([0-9]+(s|m|h|d))+$"
"""A duration such as ``30m``, ``2h`` or ``1d12h``."""
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
"""A 0x-prefixed 20-byte EVM address."""

DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""An RFC 1123 label (names of namespaces, ports, services)."""
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""The name of a Kubernetes object (RFC 1123 subdomain)."""


def _checked(*checks: tuple[str, str]) -> tuple[AfterValidator, Cel]:
    """Return a Python validator and one CEL rule that both require every ``(regex, ...)``.

    The last element's message is used for both. Regexes are passed to CEL as raw strings,
    so they must not contain a single quote.
    """
    message = checks[-1][1]
    compiled = [re.compile(regex) for regex, _ in checks]

    def validate(value: str) -> str:
        if not all(c.search(value) for c in compiled):
            raise ValueError(message)
        return value

    rule = " && ".join(f"self.matches(r'{regex}')" for regex, _ in checks)
    return AfterValidator(validate), Cel(rule, message)


_LABEL_VALUE_MSG = (
    "must be a label value: letters, digits, '-', '_' and '.', starting and ending with a"
    " letter or digit, at most 63 characters"
)
_DECIMAL_MSG = (
    'must be a decimal string such as "0.02": digits, an optional "." and at most 18'
    " decimals, no sign, no exponent"
)
_POSITIVE_DECIMAL_MSG = (
    'must be a positive decimal string such as "5.00": digits, an optional "." and at most'
    " 18 decimals, greater than zero, no sign, no exponent"
)
_DURATION_MSG = "must be a positive duration such as 30m, 2h or 1d12h (units s, m, h, d)"
_ADDRESS_MSG = "must be an EVM address: 0x followed by 40 hexadecimal digits"

LabelValue = Annotated[
    str,
    Field(min_length=1, max_length=63),
    *_checked((LABEL_VALUE_PATTERN, _LABEL_VALUE_MSG)),
]
"""A non-empty Kubernetes label value, e.g. a region or a GPU product name."""


def _positive_quantity(value: str) -> str:
    if not is_positive_quantity(value):
        raise ValueError("must be a positive Kubernetes quantity such as 500m, 2 or 16Gi")
    return value


Decimal = Annotated[
    str, Field(min_length=1, max_length=40), *_checked((DECIMAL_PATTERN, _DECIMAL_MSG))
]
"""A non-negative amount of settlement tokens as a decimal string (``"0.02"``), checked by
admission; see :mod:`kommons.money`."""
PositiveDecimal = Annotated[
    str,
    Field(min_length=1, max_length=40),
    *_checked((DECIMAL_PATTERN, _POSITIVE_DECIMAL_MSG), ("[1-9]", _POSITIVE_DECIMAL_MSG)),
]
"""A decimal string strictly greater than zero."""
MULTIPLIER_PATTERN = r"^0*([1-9](\.[0-9]{1,4})?|10(\.0{1,4})?)$"
"""A price multiplier from 1 to 10 with at most 4 decimals."""
Multiplier = Annotated[
    str,
    Field(min_length=1, max_length=16),
    *_checked(
        (
            MULTIPLIER_PATTERN,
            "must be a decimal of at least 1 and at most 10 with at most 4 decimals, such as"
            ' "2" or "1.5": a provider cannot quote more than ten times its list prices',
        )
    ),
]
"""A bounded price multiplier (``Provider.spec.pricing.policy.maxMultiplier``)."""
StatusDecimal = Annotated[str, Field(max_length=40, pattern=DECIMAL_PATTERN)]
"""A decimal amount in a status (written by Kommons; checked by OpenAPI only, no CEL cost)."""

Quantity = Annotated[str, Field(min_length=1, max_length=32)]
"""A Kubernetes resource quantity (``500m``, ``16Gi``), as reported; not checked by admission."""
PositiveQuantity = Annotated[
    Quantity,
    AfterValidator(_positive_quantity),
    Cel(
        "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
        "must be a positive Kubernetes quantity such as 500m, 2 or 16Gi",
    ),
]
"""A Kubernetes quantity strictly greater than zero (checked by the API server with CEL)."""

Duration = Annotated[
    str,
    Field(min_length=2, max_length=32),
    *_checked((DURATION_PATTERN, _DURATION_MSG), ("[1-9]", _DURATION_MSG)),
]
"""A positive duration such as ``30m``, ``2h`` or ``1d12h``; see :func:`parse_duration`."""

Address = Annotated[str, Field(max_length=42), *_checked((ADDRESS_PATTERN, _ADDRESS_MSG))]
"""A 0x-prefixed 40-hex-digit EVM address."""
StatusAddress = Annotated[str, Field(max_length=42, pattern=ADDRESS_PATTERN)]
"""An EVM address in a status (checked by OpenAPI only)."""

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> timedelta:
    """Parse a :data:`Duration` string.

    Args:
        value: e.g. ``"2h"``, ``"90m"``, ``"1d12h"``.

    Returns:
        The duration as a :class:`~datetime.timedelta`.

    Raises:
        ValueError: if ``value`` is not of the form ``([0-9]+(s|m|h|d))+``.
    """
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 30m, 2h or 1d12h")
    seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in re.findall(r"([0-9]+)(s|m|h|d)", value))
    return timedelta(seconds=seconds)


# --------------------------------------------------------------------------------------
# References and selectors
# --------------------------------------------------------------------------------------


class LocalObjectReference(ApiModel):
    """A reference to an object by name."""

    name: ObjectName = Field(description="Name of the referenced object.")


class SecretKeyRef(ApiModel):
    """A key of a Secret in a given namespace."""

    namespace: DnsLabel = Field(description="Namespace of the Secret.")
    name: ObjectName = Field(description="Name of the Secret.")
    key: str = Field(
        default="kubeconfig",
        min_length=1,
        max_length=253,
        description="Key of the Secret's data holding the value.",
    )


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector: a key, an operator and values."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            Cel(
                "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                "values must be non-empty for operators In and NotIn and empty for Exists and"
                " DoesNotExist",
                field_path=".values",
            )
        )
    )

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key's value is compared: In, NotIn, Exists or DoesNotExist."
    )
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=64,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether ``labels`` satisfy this requirement."""
        values = self.values or []
        if self.operator == "In":
            return self.key in labels and labels[self.key] in values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


class LabelSelector(ApiModel):
    """A standard Kubernetes label selector; an empty selector selects everything."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        description="Labels that must all be present with exactly these values.",
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None,
        max_length=32,
        description="Requirements that must all hold.",
    )

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Return whether an object with ``labels`` is selected (all terms are ANDed)."""
        labels = labels or {}
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions or [])


# --------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A condition per Kubernetes API conventions (metav1.Condition)."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Type of condition in CamelCase, e.g. Ready, Scheduled, PaymentOK.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        description="Machine-readable CamelCase reason for the condition's last transition.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable details about the transition.",
    )
    last_transition_time: datetime = Field(
        description="When the condition last changed from one status to another."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation the condition was set for.",
    )


CONDITIONS_EXTRA = list_map("type")
"""``json_schema_extra`` for a ``conditions`` list: a map keyed by ``type``."""


def get_condition(conditions: Sequence[Condition] | None, type_: str) -> Condition | None:
    """Return the condition of ``type_``, or ``None`` when absent."""
    for cond in conditions or ():
        if cond.type == type_:
            return cond
    return None


def set_condition(
    conditions: Sequence[Condition] | None,
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: datetime,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set, per Kubernetes API conventions.

    ``lastTransitionTime`` moves to ``now`` only when the status changes; reason, message and
    observed generation are always updated. The order of the other conditions is kept.

    Args:
        conditions: the current conditions (not modified).
        type_: condition type, e.g. ``"Ready"``.
        status: ``"True"``, ``"False"`` or ``"Unknown"``.
        reason: CamelCase reason.
        message: human-readable message.
        observed_generation: the ``metadata.generation`` this condition reflects.
        now: the current time (timezone-aware).

    Returns:
        A new list of conditions.
    """
    out: list[Condition] = []
    found = False
    for cond in conditions or ():
        if cond.type != type_:
            out.append(cond)
            continue
        found = True
        changed = cond.status != status
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if changed else cond.last_transition_time,
                observed_generation=observed_generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=observed_generation,
            )
        )
    return out


# --------------------------------------------------------------------------------------
# Object metadata (parsing only; the CRD never declares metadata's properties)
# --------------------------------------------------------------------------------------


class ObjectMeta(BaseModel):
    """The parts of metav1.ObjectMeta Kommons reads; other fields are kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None


class Resource(BaseModel):
    """Base of the top-level objects (apiVersion, kind, metadata, spec, status)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    KIND: ClassVar[str] = ""
    """The ``kind`` of the subclass."""

    api_version: str = API_VERSION
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    def to_api(self) -> dict[str, Any]:
        """Return the wire form of the whole object (unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
