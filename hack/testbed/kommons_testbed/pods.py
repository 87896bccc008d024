"""Make a kwok pod stop being Ready, become Ready again, or fail — on demand, for fault tests.

The helpers set an annotation; the bed's kwok Stages (``hack/testbed/kwok-stages.yaml``) react
by patching the pod's status, and no other Stage touches a Running pod, so the state sticks
until the annotation changes. The helpers wait until the pod's status shows the change.
"""

from __future__ import annotations

from kubernetes import client

from kommons_testbed.processes import wait_for

READY_ANNOTATION = "testbed.kommons.io/ready"
FAIL_ANNOTATION = "testbed.kommons.io/fail"


def pod_ready(pod: client.V1Pod) -> bool:
    """Whether ``pod`` has condition ``Ready=True``."""
    status = pod.status
    for cond in (status.conditions if status else None) or []:
        if cond.type == "Ready":
            return bool(cond.status == "True")
    return False


def set_pod_ready(
    core: client.CoreV1Api, namespace: str, name: str, ready: bool, *, timeout: float = 30.0
) -> client.V1Pod:
    """Make a Running kwok pod report ``Ready=<ready>`` and wait until it does.

    Args:
        core: a CoreV1Api of the provider cluster the pod runs in.
        namespace: the pod's namespace.
        name: the pod's name.
        ready: ``False`` to make it not Ready (like a failing readiness probe), ``True`` to
            make it Ready again.
        timeout: seconds to wait for kwok to apply the change.

    Returns:
        The pod as last read.
    """
    body = {"metadata": {"annotations": {READY_ANNOTATION: "true" if ready else "false"}}}
    core.patch_namespaced_pod(name, namespace, body)
    holder: list[client.V1Pod] = []

    def applied() -> bool:
        pod = core.read_namespaced_pod(name, namespace)
        holder[:] = [pod]
        return pod_ready(pod) is ready

    state = "Ready" if ready else "not Ready"
    wait_for(applied, timeout=timeout, what=f"pod {namespace}/{name} to be {state}")
    return holder[0]


def fail_pod(
    core: client.CoreV1Api, namespace: str, name: str, *, timeout: float = 30.0
) -> client.V1Pod:
    """Make a Running kwok pod fail (phase ``Failed``, exit code 1) and wait until it has.

    Owners react as to a real failure: a ReplicaSet creates a replacement pod, a Job counts a
    failure.
    """
    body = {"metadata": {"annotations": {FAIL_ANNOTATION: "true"}}}
    core.patch_namespaced_pod(name, namespace, body)
    holder: list[client.V1Pod] = []

    def failed() -> bool:
        pod = core.read_namespaced_pod(name, namespace)
        holder[:] = [pod]
        return pod.status is not None and pod.status.phase == "Failed"

    wait_for(failed, timeout=timeout, what=f"pod {namespace}/{name} to fail")
    return holder[0]
