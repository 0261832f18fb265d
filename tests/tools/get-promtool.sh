#!/bin/sh
# get-promtool.sh [DIR]: make promtool available for tests/test_metrics.py
# (`promtool check metrics`) without installing the Prometheus server:
# `apt-get download prometheus` (Debian's package, ~19 MB) and extract only
# /usr/bin/promtool into DIR (default build/promtool).  Nothing to do when
# promtool is on PATH or already in DIR.  The binary is a Go program linked
# against libc only, so the one extracted on Debian 12 also runs in the
# Debian 13 chroot of `make unit-trixie`, which sees build/ through the
# shared working directory.
set -eu
DIR=${1:-build/promtool}
if command -v promtool >/dev/null 2>&1 || [ -x "$DIR/promtool" ]; then exit 0; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
start=$(date +%s)
# apt-get download writes into the current directory (as root when _apt
# cannot: its warning goes to the log with the rest)
if ! (cd "$TMP" && apt-get download -q prometheus >"$TMP/apt.log" 2>&1); then
  # the lists may be missing on a fresh machine
  apt-get update -q >/dev/null 2>&1 || true
  (cd "$TMP" && apt-get download -q prometheus >"$TMP/apt.log" 2>&1) || {
    cat "$TMP/apt.log" >&2; echo "get-promtool: apt-get download prometheus failed" >&2; exit 1; }
fi
dpkg-deb --fsys-tarfile "$TMP"/prometheus_*.deb | tar -x -C "$TMP" ./usr/bin/promtool
mkdir -p "$DIR"
mv "$TMP/usr/bin/promtool" "$DIR/promtool.new" && mv "$DIR/promtool.new" "$DIR/promtool"
"$DIR/promtool" --version 2>&1 | head -1
echo "get-promtool: $DIR/promtool from $(basename "$TMP"/prometheus_*.deb) in $(( $(date +%s) - start )) s"
