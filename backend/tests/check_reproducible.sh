#!/usr/bin/env bash
# Build the same bundle twice into two fresh folders and compare every file's SHA-256.
# Fails (exit 1) on any difference: a changed, missing or extra file.
#   backend/tests/check_reproducible.sh [--variant ID] [--profile core|full]
# Uses backend/build-bundle (so the venv under target/venvs/ is reused when warm).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
backend="$(dirname "$here")"
repo="$(dirname "$backend")"
variant=linux-x86_64-cpu
profile=core
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    *) echo "check_reproducible: unknown argument $1" >&2; exit 2 ;;
  esac
done
work="$repo/target/repro"
rm -rf "$work"
mkdir -p "$work"
for n in 1 2; do
  echo "check_reproducible: build $n of $profile/$variant" >&2
  "$backend/build-bundle" --variant "$variant" --profile "$profile" --out "$work/b$n" >&2
  (cd "$work/b$n" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
     && find . -type l -printf 'symlink %p -> %l\n' | LC_ALL=C sort) > "$work/b$n.sha256"
done
count=$(wc -l < "$work/b1.sha256")  # files and symlinks
if ! diff -u "$work/b1.sha256" "$work/b2.sha256" >&2; then
  echo "check_reproducible: FAIL: the two builds differ (lists in $work)" >&2
  exit 1
fi
echo "check_reproducible: OK: $count files and links byte-identical across two builds" >&2
