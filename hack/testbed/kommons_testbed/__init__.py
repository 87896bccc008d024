"""The Kommons test bed: real hub and provider control planes, kwok nodes, anvil and Prometheus.

Not part of the product. Tests and ``make run`` use it through :class:`Testbed` handles,
``make testbed-up`` / ``make testbed-down`` through :mod:`kommons_testbed.cli`.
"""
