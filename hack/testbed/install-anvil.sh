#!/usr/bin/env bash
# Install the bed's chain node, anvil (Foundry), from its pinned npm package into the cache
# outside the repository. An existing install is reused, so a second run does nothing.
#
# Usage: hack/testbed/install-anvil.sh
# Env:   KOMMONS_CACHE (default ~/.cache/kommons) — the cache root; anvil goes to
#        $KOMMONS_CACHE/npm/anvil-$ANVIL_VERSION/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
#        (kommons_testbed.anvil.anvil_binary() resolves the same path).
# The install is atomic: npm installs into a temporary directory next to the final one, which is
# renamed into place only after the binary answers `--version`, so an interrupted install never
# looks complete.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$here/versions.sh"

package="@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION"
dest="$KOMMONS_CACHE/npm/anvil-$ANVIL_VERSION"
bin_rel="node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

if [ -x "$dest/$bin_rel" ]; then
  echo "install-anvil: anvil $ANVIL_VERSION cached at $dest/$bin_rel"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "install-anvil: npm is required (apt-get install -y npm)" >&2
  exit 1
fi

mkdir -p "$KOMMONS_CACHE/npm"
# Leftovers of installs that were killed outright (SIGKILL skips the trap); an hour is far longer
# than any install takes, so a concurrent install's directory is never touched.
find "$KOMMONS_CACHE/npm" -maxdepth 1 -name ".anvil-*" -mmin +60 -exec rm -rf {} + 2>/dev/null || true
tmp="$(mktemp -d "$KOMMONS_CACHE/npm/.anvil-$ANVIL_VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

echo "install-anvil: npm install $package -> $dest"
start=$SECONDS
# A private package.json keeps npm from walking up into other projects; --ignore-scripts because
# the platform package ships a ready binary and needs no install hooks.
echo '{"name": "kommons-anvil", "private": true}' >"$tmp/package.json"
npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --save-exact "$package"

version_line="$("$tmp/$bin_rel" --version | head -n 1)"
case "$version_line" in
  *"$ANVIL_VERSION"*) ;;
  *) echo "install-anvil: expected anvil $ANVIL_VERSION, got: $version_line" >&2; exit 1 ;;
esac

# Another run may have finished first; keep its install and drop ours.
if [ -x "$dest/$bin_rel" ]; then
  echo "install-anvil: anvil $ANVIL_VERSION cached at $dest/$bin_rel"
  exit 0
fi
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "install-anvil: installed $version_line in $((SECONDS - start))s at $dest/$bin_rel"
