"""The provider agent: registers a provider, heartbeats, reports inventory, runs placements.

Pull mode runs it in the provider's cluster with a hub kubeconfig scoped to the provider's hub
namespace; push mode runs the same loop inside the hub (:mod:`kommons.hub.push`).
"""
