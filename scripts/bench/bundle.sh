#!/usr/bin/env bash
# Bundle write and read throughput and peak memory, against the stock
# pipeline on the same files in the same run:
#   write: bundle.Write (BenchmarkWrite)        vs  tar -cf - DIR | zstd -T0 -L -o x
#   read:  bundle.Open+Next (BenchmarkRead*)    vs  zstd -dc x | tar -x
# on 2,000 x 256 KiB random (incompressible) files; L is the bundle's
# default level. Runs alternate (ours, theirs) RUNS times; the report gives
# every run and the best of each. Peak RSS from /usr/bin/time -v.
#
#   scripts/bench/bundle.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
for t in zstd tar /usr/bin/time go; do
	command -v "$t" >/dev/null || { echo "bundle.sh: $t is needed" >&2; exit 1; }
done
level=$(sed -n 's/^const DefaultLevel = \([0-9]*\)$/\1/p' bundle/write.go)
[ -n "$level" ] || { echo "bundle.sh: DefaultLevel not found in bundle/write.go" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bundle-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export BUNDLE_BENCH_DIR=$work/blobs
bytes=$((2000 * 262144))

go test -c -o "$work/bundle.test" ./bundle
# The first run makes the blob files (the benchmark creates them when the
# folder is empty).
(cd bundle && "$work/bundle.test" -test.run '^$' -test.bench '^BenchmarkRead$' -test.benchtime 1x >/dev/null)
[ "$(ls "$BUNDLE_BENCH_DIR" | wc -l)" -eq 2000 ] || { echo "bundle.sh: blob set not made" >&2; exit 1; }

now() { date +%s.%N; }
mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
rss() { awk '/Maximum resident set size/ { printf "%.1f", $6 / 1024 }' "$1"; }

# ours NAME: runs one benchmark iteration under /usr/bin/time, prints MB/s and peak RSS MiB.
ours() {
	(cd bundle && /usr/bin/time -v -o "$work/time.txt" "$work/bundle.test" -test.run '^$' \
		-test.bench "^$1\$" -test.benchtime 1x -test.benchmem) >"$work/out.txt"
	local mb
	mb=$(awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' "$work/out.txt")
	[ -n "$mb" ] || { cat "$work/out.txt" >&2; exit 1; }
	echo "$mb $(rss "$work/time.txt") $(awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { print $(NF-3), $(NF-1) }' "$work/out.txt")"
}

pipe_write() {
	rm -f "$work/x.tar.zst"
	local t0 t1
	t0=$(now)
	/usr/bin/time -v -o "$work/tar.txt" tar -cf - -C "$BUNDLE_BENCH_DIR" . |
		/usr/bin/time -v -o "$work/zstd.txt" zstd -q -T0 "-$level" -o "$work/x.tar.zst"
	t1=$(now)
	echo "$(mbs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") $(rss "$work/tar.txt") $(rss "$work/zstd.txt")"
}

pipe_read() {
	rm -rf "$work/x" && mkdir "$work/x"
	local t0 t1
	t0=$(now)
	/usr/bin/time -v -o "$work/zstd.txt" zstd -dc "$work/x.tar.zst" |
		/usr/bin/time -v -o "$work/tar.txt" tar -x -C "$work/x"
	t1=$(now)
	[ "$(ls "$work/x" | wc -l)" -eq 2000 ] || { echo "bundle.sh: tar -x made $(ls "$work/x" | wc -l) files" >&2; exit 1; }
	echo "$(mbs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") $(rss "$work/zstd.txt") $(rss "$work/tar.txt")"
	rm -rf "$work/x"
}

echo "# bundle.sh: $(date -u +%FT%TZ), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(go version | cut -d' ' -f3), zstd level $level, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# MB/s = 524,288,000 blob bytes / wall seconds; RSS in MiB"
echo "run | Write MB/s (RSS, B/op allocs/op) | tar|zstd -T0 -$level MB/s (tar RSS, zstd RSS) | Read MB/s (RSS) | ReadToFiles MB/s (RSS) | zstd -dc|tar -x MB/s (zstd RSS, tar RSS)"
for i in $(seq "$runs"); do
	w=$(ours BenchmarkWrite)
	pw=$(pipe_write)
	r=$(ours BenchmarkRead)
	rf=$(ours BenchmarkReadToFiles)
	pr=$(pipe_read)
	set -- $w; wl="$1 ($2, $3 B/op $4 allocs/op)"
	set -- $pw; pwl="$1 ($2, $3)"
	set -- $r; rl="$1 ($2)"
	set -- $rf; rfl="$1 ($2)"
	set -- $pr; prl="$1 ($2, $3)"
	echo "$i | $wl | $pwl | $rl | $rfl | $prl"
	echo "$w $pw $r $rf $pr" >>"$work/all.txt"
done
awk '
	{ if ($1 > w) w = $1; if ($5 > pw) pw = $5; if ($8 > r) r = $8; if ($12 > rf) rf = $12; if ($16 > pr) pr = $16
	  if ($2 > wm) wm = $2; if ($9 > rm) rm = $9; if ($13 > rfm) rfm = $13 }
	END {
		printf "best | Write %.1f | pipeline %.1f | Read %.1f | ReadToFiles %.1f | pipeline %.1f\n", w, pw, r, rf, pr
		printf "ratios (best/best): write %.2f (target >= 0.8), read with verification %.2f, read to files %.2f (target >= 0.8)\n", w / pw, r / pr, rf / pr
		printf "peak RSS of the benchmark process (MiB, largest run): Write %.1f, Read %.1f, ReadToFiles %.1f (target < 128)\n", wm, rm, rfm
	}' "$work/all.txt"
