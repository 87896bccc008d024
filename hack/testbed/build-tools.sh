#!/usr/bin/env bash
# Build the test bed's binaries from the pinned Go modules in hack/tools/ and cache them
# outside the repository. A binary already in the cache is reused, so a second run builds nothing.
#
# Usage: hack/testbed/build-tools.sh [TOOL ...]     (default: every tool)
# Tools: kube-apiserver kube-controller-manager kube-scheduler kubectl kwok etcd helm
# Env:   KOMMONS_CACHE (default ~/.cache/kommons) — the cache root; binaries go to
#        $KOMMONS_CACHE/bin/<pins>/ where <pins> names the pinned versions.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools_dir="$(cd "$here/../tools" && pwd)"
# shellcheck source=versions.sh
source "$here/versions.sh"

all_tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok etcd helm)
requested=("$@")
[ ${#requested[@]} -gt 0 ] || requested=("${all_tools[@]}")

mkdir -p "$KOMMONS_BIN"

# module dir, package, and version-stamp ldflags for each tool
module_of() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kwok) echo kube ;;
    etcd) echo etcd ;;
    helm) echo helm ;;
    *) echo "build-tools: unknown tool '$1' (known: ${all_tools[*]})" >&2; exit 2 ;;
  esac
}
package_of() {
  case "$1" in
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    etcd) echo ./cmd/etcd ;;
    helm) echo helm.sh/helm/v3/cmd/helm ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}
ldflags_of() {
  case "$1" in
    kube-*|kubectl)
      local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
      echo "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" \
           "-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
           "-X k8s.io/component-base/version.gitTreeState=clean" ;;
    kwok) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" ;;
    helm) echo "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
    *) echo "-s -w" ;;
  esac
}

missing=()
for tool in "${requested[@]}"; do
  module_of "$tool" >/dev/null
  if [ -x "$KOMMONS_BIN/$tool" ]; then
    echo "build-tools: $tool cached at $KOMMONS_BIN/$tool"
  else
    missing+=("$tool")
  fi
done
[ ${#missing[@]} -gt 0 ] || exit 0

total=${#missing[@]}
n=0
for tool in "${missing[@]}"; do
  n=$((n + 1))
  mod="$(module_of "$tool")"
  start=$(date +%s)
  echo "build-tools: [$n/$total] building $tool (module hack/tools/$mod; a cold build takes minutes on 2 cores) ..."
  tmp="$KOMMONS_BIN/.$tool.partial"
  (cd "$tools_dir/$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$(ldflags_of "$tool")" \
      -o "$tmp" "$(package_of "$tool")")
  mv "$tmp" "$KOMMONS_BIN/$tool"   # atomic: an interrupted build never leaves a half binary
  echo "build-tools: [$n/$total] $tool done in $(( $(date +%s) - start ))s"
done
