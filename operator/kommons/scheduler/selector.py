"""Kubernetes LabelSelector semantics, evaluated in pure Python.

The hub hands the pool's ``providerSelector`` over as a :class:`LabelSelector`; the scheduler
matches it against each provider's labels. Semantics follow ``metav1.LabelSelector``: all
``matchLabels`` and all ``matchExpressions`` must hold (AND); an empty selector selects
everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Operator(StrEnum):
    """Operator of a label selector requirement."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry.

    Raises:
        ValueError: If ``In``/``NotIn`` has no values or ``Exists``/``DoesNotExist`` has some,
            as the Kubernetes API server would refuse it.
    """

    key: str
    """Label key the requirement is about."""
    operator: Operator
    """How the label's value is tested."""
    values: frozenset[str] = frozenset()
    """Values for ``In``/``NotIn``; must be empty for ``Exists``/``DoesNotExist``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "operator", Operator(self.operator))
        object.__setattr__(self, "values", frozenset(self.values))
        needs_values = self.operator in (Operator.IN, Operator.NOT_IN)
        if needs_values and not self.values:
            raise ValueError(
                f"selector requirement on {self.key!r}: {self.operator.value} "
                "needs at least one value"
            )
        if not needs_values and self.values:
            raise ValueError(
                f"selector requirement on {self.key!r}: {self.operator.value} takes no values"
            )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether ``labels`` satisfy this requirement."""
        present = self.key in labels
        if self.operator is Operator.IN:
            return present and labels[self.key] in self.values
        if self.operator is Operator.NOT_IN:
            return not present or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return present
        return not present


@dataclass(frozen=True)
class LabelSelector:
    """A ``metav1.LabelSelector``: ``matchLabels`` AND ``matchExpressions``."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    """Exact key/value pairs that must all be present."""
    match_expressions: tuple[Requirement, ...] = ()
    """Requirements that must all hold."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "match_labels", MappingProxyType(dict(self.match_labels)))
        object.__setattr__(self, "match_expressions", tuple(self.match_expressions))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether ``labels`` are selected."""
        return matches_selector(labels, self.match_labels, self.match_expressions)


def matches_selector(
    labels: Mapping[str, str],
    match_labels: Mapping[str, str] | None = None,
    match_expressions: Iterable[Requirement] = (),
) -> bool:
    """Evaluate a Kubernetes label selector against a set of labels.

    Args:
        labels: The object's labels.
        match_labels: Pairs that must all be present with exactly these values.
        match_expressions: Requirements (``In``, ``NotIn``, ``Exists``, ``DoesNotExist``)
            that must all hold. ``NotIn`` holds when the key is absent, as in Kubernetes.

    Returns:
        True if every pair and every requirement holds; an empty selector matches anything.
    """
    for key, value in (match_labels or {}).items():
        if labels.get(key) != value:
            return False
    return all(requirement.matches(labels) for requirement in match_expressions)
