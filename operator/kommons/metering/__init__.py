"""Metering: ready-time accounting (agent), acceptance and the lease ledger (hub). Pure.

- :mod:`kommons.metering.timeline` — whole-second time and interval arithmetic.
- :mod:`kommons.metering.accounting` — the agent's checkpoint, advanced from pod observations.
- :mod:`kommons.metering.acceptance` — what the hub accepts of a checkpoint, split by epoch.
- :mod:`kommons.metering.ledger` — ``ComputeLease.status.usage`` / ``status.cost`` (SET, fold).
- :mod:`kommons.metering.outages` — the hub's record of Unreachable windows on a Provider.

See docs/metering.md.
"""
