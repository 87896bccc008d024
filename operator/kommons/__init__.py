"""Kommons: a Kubernetes operator that federates community clusters into one compute market."""

__version__ = "0.1.0"
