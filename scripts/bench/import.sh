#!/usr/bin/env bash
# Import throughput: `mirror import` of a full bundle of N x SIZE blobs
# (default 2,000 x 256 KiB) against the stock-tools baseline on the same
# file in the same run: `zstd -dc | tar -x` then `sha256sum -c` of the
# extracted files. Both read the bundle from the page cache; the import also
# checks the operator signature, fsyncs every blob, builds and fsyncs the
# generation and switches it.
#
#   scripts/bench/import.sh [N [SIZE]] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2000}
size=${2:-262144}
runs=${3:-5}
work=$(mktemp -d /var/tmp/mirror-bench-import.XXXXXX)
trap 'rm -rf "$work"' EXIT

go build -o "$work/mirror" ./cmd/mirror
go run scripts/bench/import-gen.go "$work/in" "$n" "$size"
b="$work/in/bench.tar.zst"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo "bundle: $n x $size bytes, $(stat -c %s "$b") bytes compressed"
cat "$b" >/dev/null # warm the page cache for both

hyperfine --runs "$runs" --warmup 1 --export-json "$work/result.json" \
	--prepare "rm -rf $work/x $work/repo; mkdir $work/x; sync" \
	-n "zstd -dc | tar -x && sha256sum -c" "cd $work/x && zstd -dc $b | tar -x && sha256sum -c --quiet SHA256SUMS" \
	-n "mirror import" "$work/mirror import --pub $work/in/operator.pub --repo $work/repo $b"

rm -rf "$work/repo"
/usr/bin/time -f "mirror import peak RSS: %M KiB" "$work/mirror" import --pub "$work/in/operator.pub" --repo "$work/repo" "$b" >/dev/null

python3 - "$work/result.json" "$n" "$size" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
mb = int(sys.argv[2]) * int(sys.argv[3]) / 2**20
base, imp = r[0]["mean"], r[1]["mean"]
print(f"baseline {base:.2f} s ({mb/base:.0f} MiB/s), mirror import {imp:.2f} s ({mb/imp:.0f} MiB/s): "
      f"import throughput = {base/imp:.2f} x baseline (target >= 0.70)")
PY
