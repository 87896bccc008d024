#!/usr/bin/env bash
# Install the contracts' pinned npm packages (solc, OpenZeppelin contracts and merkle-tree, exactly
# as package-lock.json says) into the cache outside the repository, and link contracts/node_modules
# to it. The cache directory is named after the lock file's hash, so a changed lock installs anew
# and every worktree shares one install. A second run only checks the link.
#
# Usage: contracts/install-deps.sh        Env: KOMMONS_CACHE (default ~/.cache/kommons)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KOMMONS_CACHE:-$HOME/.cache/kommons}"
lock_hash="$(sha256sum "$here/package-lock.json" | cut -c1-12)"
dest="$cache/npm/contracts-$lock_hash"
link="$here/node_modules"

if [ ! -f "$dest/.complete" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: npm is required (apt-get install -y npm)" >&2
    exit 1
  fi
  mkdir -p "$cache/npm"
  tmp="$(mktemp -d "$cache/npm/.contracts-$lock_hash.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  cp "$here/package.json" "$here/package-lock.json" "$tmp/"
  echo "install-deps: npm ci (solc, @openzeppelin/contracts, @openzeppelin/merkle-tree) -> $dest"
  start=$SECONDS
  npm ci --prefix "$tmp" --no-audit --no-fund --ignore-scripts
  touch "$tmp/.complete"
  if [ -f "$dest/.complete" ]; then
    echo "install-deps: another run installed $dest first; keeping it"
  else
    rm -rf "$dest"
    mv "$tmp" "$dest"
    echo "install-deps: installed in $((SECONDS - start))s"
  fi
  trap - EXIT
fi

if [ "$(readlink "$link" 2>/dev/null || true)" != "$dest/node_modules" ]; then
  rm -rf "$link"
  ln -s "$dest/node_modules" "$link"
fi
echo "install-deps: contracts/node_modules -> $dest/node_modules"
