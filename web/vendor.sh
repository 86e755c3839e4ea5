#!/bin/sh
# vendor.sh refreshes the pages' vendored libraries (web/static/vendor) from
# the npm registry, as static/vendor/SOURCES lists them, and rewrites
# static/vendor/SHA256SUMS. `npm pack` checks each tarball against the
# registry's integrity hash; web's tests then check every vendored file
# against SHA256SUMS, so a file changed by hand fails the build.
#
# To move to a new version: edit SOURCES, run this script, read the diff,
# run `go test ./web/ ./cmd/chatbox -run Browser`, commit.
set -eu
cd "$(dirname "$0")/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

grep -v '^#' SOURCES | while read -r pkg file dest; do
	[ -n "$pkg" ] || continue
	dir="$work/$(echo "$pkg" | tr '/@' '__')"
	if [ ! -d "$dir" ]; then
		mkdir -p "$dir"
		(cd "$dir" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz)
	fi
	mkdir -p "$(dirname "$dest")"
	cp "$dir/$file" "$dest"
	echo "$pkg $file -> $dest"
done

grep -v '^#' SOURCES | awk 'NF { print $3 }' | sort -u | xargs sha256sum > SHA256SUMS
echo "wrote static/vendor/SHA256SUMS"
