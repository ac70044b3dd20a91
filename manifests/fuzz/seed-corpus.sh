#!/bin/sh
# Fills corpus/<target>/ with realistic seeds: the example manifest, and a signed
# manifest (announcing and retiring keys), its signature, index and archive made by
# peft-release from a small folder. Run from manifests/fuzz after
# `cargo build --bins` at the repository root (docs/SECURITY.md, "Fuzzing").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rel="$root/target/debug/peft-release"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/in/peft_engine/_internal/pkg"
printf '#!/bin/sh\necho engine\n' > "$tmp/in/peft_engine/peft_engine"
chmod 755 "$tmp/in/peft_engine/peft_engine"
echo 'VERSION = 1' > "$tmp/in/peft_engine/_internal/pkg/__init__.py"
echo 'VERSION = 1' > "$tmp/in/peft_engine/_internal/pkg/copy.py"
: > "$tmp/in/peft_engine/_internal/empty.txt"
"$rel" keygen --out "$tmp/a" 2>/dev/null
"$rel" keygen --out "$tmp/b" 2>/dev/null
"$rel" pack --repo "$tmp/repo" --input "$tmp/in" --version 1.0.0 \
    --variant linux-x86_64-cpu --entry peft_engine/peft_engine 2>/dev/null
"$rel" publish --repo "$tmp/repo" --channel stable --key "$tmp/a/release.key" \
    --announce-key "$tmp/b/release.pub" --retire-key 1234ABCD 2>/dev/null
cd "$here"
mkdir -p corpus/manifest corpus/accept corpus/index corpus/zip_entries
m="$tmp/repo/channels/stable/manifest.json"
cp "$root/manifests/examples/stable.json" corpus/manifest/example.json
cp "$m" corpus/manifest/published.json
{ cat "$m"; printf '\000'; cat "$m.minisig"; } > corpus/accept/published
for b in "$tmp"/repo/blobs/sha256/*; do
    case "$(head -c 2 "$b")" in
        PK) cp "$b" corpus/zip_entries/packed.zip ;;
        '{"') cp "$b" corpus/index/packed.json ;;
    esac
done
ls -l corpus/*
