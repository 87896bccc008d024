# Pinned versions of the test bed's parts; sourced by the hack/testbed scripts.
# The Go pins themselves live in hack/tools/*/go.mod; these names must agree with them.
KUBE_VERSION=v1.36.3
KWOK_VERSION=v0.8.0
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.22.0
ANVIL_VERSION=1.7.1
KOMMONS_CACHE="${KOMMONS_CACHE:-$HOME/.cache/kommons}"
KOMMONS_BIN="${KOMMONS_BIN:-$KOMMONS_CACHE/bin/k8s-$KUBE_VERSION-kwok-$KWOK_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION}"
export KOMMONS_CACHE KOMMONS_BIN
