"""The hub operator: places leases on providers, tracks providers, aggregates status.

Handlers (:mod:`.handlers`) are thin; they read kopf indexes, call the pure scheduler and
status functions, and write through :mod:`kommons.kube`.
"""
