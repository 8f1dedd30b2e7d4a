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
#
# A/B: with BUNDLE_BASE_TEST set to a test binary of the bundle package
# built from another commit (go test -c -o FILE ./bundle), every run also
# runs that binary's BenchmarkWrite, right before ours, and the report gives
# both.
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
cpu() { awk '/User time|System time/ { s += $4 } END { printf "%.2f", s }' "$@"; }

# ours NAME [BINARY]: runs one benchmark iteration under /usr/bin/time, prints MB/s and peak RSS MiB.
ours() {
	(cd bundle && /usr/bin/time -v -o "$work/time.txt" "${2:-$work/bundle.test}" -test.run '^$' \
		-test.bench "^$1\$" -test.benchtime 1x -test.benchmem) >"$work/out.txt"
	local mb
	mb=$(awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' "$work/out.txt")
	[ -n "$mb" ] || { cat "$work/out.txt" >&2; exit 1; }
	local cpu
	cpu=$(awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 1; i <= NF; i++) if ($(i+1) == "cpu-s/op") print $i }' "$work/out.txt")
	echo "$mb $(rss "$work/time.txt") $(awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { print $(NF-3), $(NF-1) }' "$work/out.txt") $cpu"
}

pipe_write() {
	rm -f "$work/x.tar.zst"
	local t0 t1
	t0=$(now)
	/usr/bin/time -v -o "$work/tar.txt" tar -cf - -C "$BUNDLE_BENCH_DIR" . |
		/usr/bin/time -v -o "$work/zstd.txt" zstd -q -T0 "-$level" -o "$work/x.tar.zst"
	t1=$(now)
	echo "$(mbs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") $(rss "$work/tar.txt") $(rss "$work/zstd.txt") $(cpu "$work/tar.txt" "$work/zstd.txt")"
}

# pipe_write_checked is pipe_write doing the work bundle.Write does beyond
# it: SHA-256 of every input file, BLAKE2b-512 of the output, fsync of the
# output.
pipe_write_checked() {
	rm -f "$work/x.tar.zst"
	local t0 t1
	t0=$(now)
	(cd "$BUNDLE_BENCH_DIR" && /usr/bin/time -v -o "$work/sum.txt" sha256sum -- * >/dev/null) &
	/usr/bin/time -v -o "$work/tar.txt" tar -cf - -C "$BUNDLE_BENCH_DIR" . |
		/usr/bin/time -v -o "$work/zstd.txt" zstd -q -T0 "-$level" |
		tee "$work/x.tar.zst" | /usr/bin/time -v -o "$work/b2.txt" b2sum >/dev/null
	wait
	sync "$work/x.tar.zst"
	t1=$(now)
	echo "$(mbs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") $(cpu "$work/tar.txt" "$work/zstd.txt" "$work/sum.txt" "$work/b2.txt")"
}

pipe_read() {
	rm -rf "$work/x" && mkdir "$work/x"
	local t0 t1
	t0=$(now)
	/usr/bin/time -v -o "$work/zstd.txt" zstd -dc "$work/x.tar.zst" |
		/usr/bin/time -v -o "$work/tar.txt" tar -x -C "$work/x"
	t1=$(now)
	[ "$(ls "$work/x" | wc -l)" -eq 2000 ] || { echo "bundle.sh: tar -x made $(ls "$work/x" | wc -l) files" >&2; exit 1; }
	echo "$(mbs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") $(rss "$work/zstd.txt") $(rss "$work/tar.txt") $(cpu "$work/tar.txt" "$work/zstd.txt")"
	rm -rf "$work/x"
}

echo "# bundle.sh: $(date -u +%FT%TZ), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(go version | cut -d' ' -f3), zstd level $level, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# MB/s = 524,288,000 blob bytes / wall seconds; RSS in MiB"
echo "run | Write MB/s (RSS, B/op allocs/op, CPU s) | WriteFloor MB/s (CPU s) | tar|zstd -T0 -$level MB/s (tar RSS, zstd RSS, CPU s) | same + sha256sum inputs, b2sum output, sync MB/s (CPU s) | Read MB/s (RSS, CPU s) | ReadToFiles MB/s (RSS, CPU s) | zstd -dc|tar -x MB/s (zstd RSS, tar RSS, CPU s)"
base=${BUNDLE_BASE_TEST:-}
[ -z "$base" ] || [ -x "$base" ] || { echo "bundle.sh: BUNDLE_BASE_TEST=$base is not an executable" >&2; exit 1; }
for i in $(seq "$runs"); do
	if [ -n "$base" ]; then
		set -- $(ours BenchmarkWrite "$base")
		echo "$i | base Write $1 MB/s (RSS $2, CPU s $5)"
		echo "$1 $5" >>"$work/base.txt"
	fi
	w=$(ours BenchmarkWrite)
	fl=$(ours BenchmarkWriteFloor)
	pw=$(pipe_write)
	pc=$(pipe_write_checked)
	r=$(ours BenchmarkRead)
	rf=$(ours BenchmarkReadToFiles)
	pr=$(pipe_read)
	set -- $w; wl="$1 ($2, $3 B/op $4 allocs/op, $5)"
	set -- $pw; pwl="$1 ($2, $3, $4)"
	set -- $pc; pcl="$1 ($2)"
	set -- $r; rl="$1 ($2, $5)"
	set -- $rf; rfl="$1 ($2, $5)"
	set -- $pr; prl="$1 ($2, $3, $4)"
	set -- $fl; fll="$1 ($5)"
	echo "$i | $wl | $fll | $pwl | $pcl | $rl | $rfl | $prl"
	echo "$w $pw $r $rf $pr $pc $fl" >>"$work/all.txt"
done
# Fields: Write 1-5, pipeline write 6-9, Read 10-14, ReadToFiles 15-19, pipeline read 20-23,
# checked pipeline write 24-25, WriteFloor 26-30.
awk -v cores="$(nproc)" -v bytes="$bytes" '
	function best(v, cur) { return v > cur ? v : cur }
	function low(v, cur) { return (cur == "" || v < cur) ? v : cur }
	{ w = best($1, w); pw = best($6, pw); r = best($10, r); rf = best($15, rf); pr = best($20, pr)
	  wm = best($2, wm); rm = best($11, rm); rfm = best($16, rfm)
	  wc = low($5, wc); pwc = low($9, pwc); rc = low($14, rc); rfc = low($19, rfc); prc = low($23, prc)
	  pc = best($24, pc); pcc = low($25, pcc); fl = best($26, fl); flc = low($30, flc)
	  n++; pr_w[n] = $1 / $6 }
	END {
		printf "best | Write %.1f | pipeline %.1f | Read %.1f | ReadToFiles %.1f | pipeline %.1f\n", w, pw, r, rf, pr
		printf "ratios (best/best): write %.2f (target >= 0.8), read with verification %.2f, read to files %.2f (target >= 0.8)\n", w / pw, r / pr, rf / pr
		# Run by run: each Write against the pipeline run right after it;
		# the median is not moved by one fast or slow minute of either.
		line = ""
		for (i = 1; i <= n; i++) line = line sprintf(" %.2f", pr_w[i])
		for (i = 2; i <= n; i++) for (j = i; j > 1 && pr_w[j-1] > pr_w[j]; j--) { t = pr_w[j]; pr_w[j] = pr_w[j-1]; pr_w[j-1] = t }
		med = n % 2 ? pr_w[(n + 1) / 2] : (pr_w[n / 2] + pr_w[n / 2 + 1]) / 2
		printf "write against the pipeline run by run:%s; median %.2f\n", line, med
		allowed = cores * bytes / 1e6 / (0.8 * pw)
		printf "the required hashes alone (BenchmarkWriteFloor: blob SHA-256 + stream BLAKE2b-512 on two goroutines, nothing compressed or written): best %.1f MB/s, least CPU %.2f s; 0.8 of the best pipeline run allows %.2f CPU s on %d cores, which leaves %.2f CPU s to read, compress, frame and write the 500 MiB (tar|zstd: %.2f CPU s; Write: %.2f CPU s in all)\n", fl, flc, allowed, cores, allowed - flc, pwc, wc
		printf "write against the pipeline doing the same hashing and fsync: best %.1f MB/s, ratio %.2f, least CPU %.2f s\n", pc, w / pc, pcc
		printf "least CPU seconds: Write %.2f, tar|zstd %.2f; Read %.2f, ReadToFiles %.2f, zstd -dc|tar -x %.2f\n", wc, pwc, rc, rfc, prc
		printf "peak RSS of the benchmark process (MiB, largest run): Write %.1f, Read %.1f, ReadToFiles %.1f (target < 128)\n", wm, rm, rfm
	}' "$work/all.txt"
if [ -n "$base" ]; then
	awk -v pw="$(awk '{ if ($6 > m) m = $6 } END { print m }' "$work/all.txt")" \
		-v w="$(awk '{ if ($1 > m) m = $1 } END { print m }' "$work/all.txt")" '
		{ if ($1 > b) b = $1; if (c == "" || $2 < c) c = $2 }
		END { printf "base (BUNDLE_BASE_TEST): best Write %.1f MB/s, ratio to the pipeline %.2f (this tree: %.2f), least CPU %.2f s\n", b, b / pw, w / pw, c }' "$work/base.txt"
fi
