#!/usr/bin/env bash
# The fetcher benchmark (docs/BENCHMARKS.md, "Fetcher"): BenchmarkDownload
# in mirror/fetch, every variant (mirror, mirror+store, curl-xargs-P8,
# curl-parallel) once per round, ROUNDS rounds (default 3), so that the
# variants share the machine's conditions; then the median of each.
# Usage: scripts/bench/fetch.sh [ROUNDS]
# BENCH=regexp narrows the variants, e.g.
# BENCH='BenchmarkDownload/20000x8KiB/(mirror|curl-parallel)$' (the xargs
# variant alone takes minutes on the 20,000-file set).
# FETCH_BENCH_UPSTREAM=nginx serves the files with nginx in its own process.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
bench="${BENCH:-BenchmarkDownload}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3), $(curl --version | head -1 | cut -d' ' -f1-2)"
for r in $(seq "$rounds"); do
	echo "round $r, $(uptime | sed 's/.*load/load/')"
	go test -run='^$' -bench="$bench" -benchtime=1x -count=1 ./mirror/fetch/ | grep '^Benchmark' | tee -a "$out"
done
echo "median of $rounds rounds:"
awk '{
	name=$1; sub(/-[0-9]+$/, "", name)
	for (i = 1; i <= NF; i++) {
		if ($i == "MB/s") mb[name] = mb[name] " " $(i-1)
		if ($i == "files/s") fs[name] = fs[name] " " $(i-1)
	}
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
function median(list,   a, k, i, j, t) {
	k = split(list, a, " ")
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END { for (i = 1; i <= n; i++) printf "%-50s %10.1f MB/s %10.0f files/s\n", order[i], median(mb[order[i]]), median(fs[order[i]]) }' "$out"
