#!/usr/bin/env bash
# Benchmark of `mirror sync` (docs/BENCHMARKS.md, section "Sync").
#
# For each set (2,000 x 256 KiB and 20,000 x 8 KiB random files, one minisign
# signature each, made by the real minisign), served from loopback by nginx:
#   1. cold `mirror sync` (empty state) — wall time and peak RSS (/usr/bin/time -v)
#   2. no-op re-sync (warm state, nothing changed)
#   3. the same work by a shell script with stock tools: per file one curl
#      for the file and its signature and one `minisign -V`, then
#      `tar -cf - | zstd -1 -T0` into one archive
#   4. `tar -cf - | zstd -T0 -1 | sha256sum` over the same files on disk
#      (the machine's ceiling for packing the bytes; -1 is the bundle's
#      default level)
#
#   scripts/bench/sync.sh [SETS]     SETS: "large small" (default), or one
#   BENCH_DIV=10 scripts/bench/sync.sh   a tenth of the files (a quick check)
#   BENCH_BASE=COMMIT scripts/bench/sync.sh   also time COMMIT's build, alternating
#   BENCH_NGINX_WORKERS=1 scripts/bench/sync.sh   the upstream with one nginx
#                                        worker (default: one per core)
#   BENCH_NO_SCRIPT=1 scripts/bench/sync.sh   skip the stock-tool shell script
#                                        (18 minutes on 20,000 files)
# 5. the request floor: a bare Go client (scripts/bench/sync-reqrate.go, 8
#    keep-alive connections, bodies read and dropped) GETs every signature
#    (what a no-op needs) and every file, from the same nginx; the same
#    signature GETs through mirror's own fetch client (-fetch), one at a
#    time and pipelined as sync asks for them (-many).
# 6. one cold sync with an encrypted operator key (made by this build's
#    keygen, passphrase from MIRROR_PASSPHRASE_FILE, as cron runs it): wall
#    time and peak RSS (scrypt's memory comes on top of the run's).
# Every cold run (and the script) writes to a file system made for it
# (ext4 with its defaults, on a loop device; needs root; BENCH_FRESH_FS=0
# writes to $TMPDIR instead): on ext4 without a journal, the inode allocator
# skips inodes freed in the last 60-360 s, one buffer lookup each, so a cold
# run right after the previous run's state was deleted measured that scan
# (5.5-10.2 s for the same small-set run; docs/BENCHMARKS.md, session 7).
# Results are printed as a markdown table. Needs: go, nginx, curl, minisign,
# zstd, tar, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
sets=${1:-"large small"}
work=$(mktemp -d /tmp/mirror-bench-sync.XXXXXX)
nginx_pid=""
fs=""
cleanup() {
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
	[ -n "$fs" ] && umount "$fs" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

for tool in nginx curl minisign zstd tar /usr/bin/time go; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

# Build the committed tree (HEAD), not a working tree others may be editing.
mkdir -p "$work/src"
git archive HEAD | tar -x -C "$work/src"
(cd "$work/src" && go build -o "$work/mirror" ./cmd/mirror && go build -o "$work/reqrate" scripts/bench/sync-reqrate.go)
echo "bench: mirror built from commit $(git rev-parse --short HEAD)" >&2
if [ -n "${BENCH_BASE:-}" ]; then
	# BENCH_BASE=COMMIT: also time that commit's build, in the same run.
	mkdir -p "$work/base"
	git archive "$BENCH_BASE" | tar -x -C "$work/base"
	(cd "$work/base" && go build -o "$work/mirror-base" ./cmd/mirror)
fi

# Data sets and the server (make_set, start_nginx).
. scripts/bench/lib-upstream.sh
port=$((20000 + RANDOM % 20000))
start_nginx "$port"
url="http://127.0.0.1:$port"

# An unencrypted operator key for the runs of the table; an encrypted one
# (keygen's default) for one cold run per build (step 6).
"$work/mirror" keygen --out "$work/op" --unencrypted >/dev/null 2>&1
echo "bench passphrase" >"$work/pass"
MIRROR_PASSPHRASE_FILE="$work/pass" "$work/mirror" keygen --out "$work/openc" >/dev/null 2>&1

# fresh SET: an empty place for SET's state, bundles and script output,
# in $place: a new file system each time when there is one (see above).
place=$work
if [ "${BENCH_FRESH_FS:-1}" = 1 ]; then
	if [ "$(id -u)" -eq 0 ] && command -v mkfs.ext4 >/dev/null && truncate -s 4G "$work/fs.img" && mkdir -p "$work/fs" &&
		mkfs.ext4 -q -F "$work/fs.img" && mount -o loop "$work/fs.img" "$work/fs"; then
		fs=$work/fs place=$fs
	else
		echo "bench: no file system of its own for the cold runs (root and mkfs.ext4 needed): they write to $work" >&2
	fi
fi
fresh() {
	if [ -n "$fs" ]; then
		umount "$fs"
		# Inode tables and journal written now, not by the kernel's lazy init during the run.
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/fs.img"
		mount -o loop "$work/fs.img" "$fs"
	else
		rm -rf "$place/state-$1" "$place/out-$1" "$place/script-$1"
	fi
}

secs() { # /usr/bin/time -v output -> seconds
	awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

echo "bench: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "| set | files | MiB | mirror cold s | MiB/s | files/s | peak RSS MiB | no-op s | no-op % of cold | cold, encrypted key: s / peak RSS MiB | script s | speed-up | tar\|zstd\|sha256sum s | mirror / tar\|zstd |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for set in $sets; do
	case $set in
	large) n=$((2000 / ${BENCH_DIV:-1})) size=262144 ;;
	small) n=$((20000 / ${BENCH_DIV:-1})) size=8192 ;;
	*) echo "unknown set $set" >&2; exit 2 ;;
	esac
	make_set "$set" $n $size
	mib=$(( n * size / 1048576 ))
	cfg="$work/$set.toml"
	cat >"$cfg" <<CONF
[operator]
key = "$work/op/operator.key"
[output]
dir = "$place/out-$set"
state = "$place/state-$set"
[[trust.key]]
name = "rel"
file = "$work/rel.pub"
allow = ["$set:p/*"]
[[source]]
name = "$set"
type = "files"
url = "$url/$set/"
files = ["p/*.tgz"]
listing = "$work/$set.listing"
signatures = ["{file}.minisig"]
CONF
	# BENCH_RUNS (default 3) cold runs, each followed by a no-op run, and
	# as many runs of the tar pipeline below; the table shows the medians
	# (every run is printed on stderr) and the highest peak RSS.
	# With BENCH_BASE, the base build runs right after each run of HEAD
	# (same files, same server, alternating).
	colds="" noops="" peak=0 bcolds="" bnoops="" bpeak=0
	for run in $(seq "${BENCH_RUNS:-3}"); do
		for bin in mirror ${BENCH_BASE:+mirror-base}; do
			fresh "$set"
			sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
			/usr/bin/time -v "$work/$bin" sync --config "$cfg" >"$work/cold.out" 2>"$work/cold.time" || { cat "$work/cold.out" "$work/cold.time"; exit 1; }
			c=$(secs "$work/cold.time"); p=$(rss "$work/cold.time")
			/usr/bin/time -v "$work/$bin" sync --config "$cfg" >"$work/noop.out" 2>"$work/noop.time" || { cat "$work/noop.out" "$work/noop.time"; exit 1; }
			grep -q "nothing new" "$work/noop.out" || { echo "no-op run made a bundle:"; cat "$work/noop.out"; exit 1; }
			o=$(secs "$work/noop.time"); q=$(rss "$work/noop.time")
			echo "bench: $set run $run $bin: cold $c s (peak RSS $p MiB), no-op $o s (peak RSS $q MiB), load $(cut -d' ' -f1 /proc/loadavg)" >&2
			if [ "$bin" = mirror ]; then
				colds="$colds $c" noops="$noops $o"
				peak=$(( p > peak ? p : peak )); peak=$(( q > peak ? q : peak ))
			else
				bcolds="$bcolds $c" bnoops="$bnoops $o"
				bpeak=$(( p > bpeak ? p : bpeak )); bpeak=$(( q > bpeak ? q : bpeak ))
			fi
		done
	done
	# One cold run per build with the encrypted key.
	sed "s|$work/op/operator.key|$work/openc/operator.key|" "$cfg" >"$work/$set-enc.toml"
	enc="" benc=""
	for bin in mirror ${BENCH_BASE:+mirror-base}; do
		fresh "$set"
		sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
		MIRROR_PASSPHRASE_FILE="$work/pass" /usr/bin/time -v "$work/$bin" sync --config "$work/$set-enc.toml" >"$work/enc.out" 2>"$work/enc.time" || { cat "$work/enc.out" "$work/enc.time"; exit 1; }
		e="$(secs "$work/enc.time") / $(rss "$work/enc.time")"
		echo "bench: $set $bin: cold with the encrypted key $e (s / peak RSS MiB), load $(cut -d' ' -f1 /proc/loadavg)" >&2
		if [ "$bin" = mirror ]; then enc=$e; else benc=$e; fi
	done
	cold=$(median $colds); noop=$(median $noops)
	if [ -n "${BENCH_BASE:-}" ]; then
		bcold=$(median $bcolds); bnoop=$(median $bnoops)
		echo "bench: $set base $BENCH_BASE: cold $bcold s, no-op $bnoop s, peak RSS $bpeak MiB" >&2
	fi

	# The request floor: a bare client, nothing but the requests.
	"$work/reqrate" -base "$url/$set/" -list "$work/$set.listing" -suffix .minisig >"$work/floor.sig"
	"$work/reqrate" -base "$url/$set/" -list "$work/$set.listing" >"$work/floor.file"
	"$work/reqrate" -fetch -base "$url/$set/" -list "$work/$set.listing" -suffix .minisig >"$work/floor.fetch"
	"$work/reqrate" -many -base "$url/$set/" -list "$work/$set.listing" -suffix .minisig >"$work/floor.many"
	echo "bench: $set request floor: signatures: $(cat "$work/floor.sig"); files: $(cat "$work/floor.file"); signatures through mirror/fetch: $(cat "$work/floor.fetch"); pipelined: $(cat "$work/floor.many")" >&2
	script=""
	if [ -z "${BENCH_NO_SCRIPT:-}" ]; then
	# The shell script with stock tools.
	cat >"$work/script.sh" <<'SCRIPT'
#!/usr/bin/env bash
# Fetch, verify and pack a signed file set with stock tools, one file at a time.
set -euo pipefail
url=$1 listing=$2 pub=$3 out=$4
mkdir -p "$out/files"
cd "$out/files"
while read -r f; do
	mkdir -p "$(dirname "$f")"
	curl -sf -o "$f" "$url/$f" -o "$f.minisig" "$url/$f.minisig"
	minisign -V -q -p "$pub" -m "$f"
done <"$listing"
tar -cf - . | zstd -q -1 -T0 >"$out/bundle.tar.zst"
SCRIPT
	grep -v minisig "$work/$set.listing" >"$work/$set.files"
	fresh "$set"
	/usr/bin/time -v bash "$work/script.sh" "$url/$set" "$work/$set.files" "$work/rel.pub" "$place/script-$set" >/dev/null 2>"$work/script.time"
	script=$(secs "$work/script.time")
	fi

	# The tar pipeline twice: with the files in the page cache (as they are
	# after the runs above), and, like every cold sync above, after the
	# page cache was dropped (the sync's upstream reads them from disk).
	tars="" tarcs=""
	for run in $(seq "${BENCH_RUNS:-3}"); do
		/usr/bin/time -v bash -c "tar -C '$work/up/$set' -cf - p | zstd -q -1 -T0 | sha256sum >/dev/null" 2>"$work/tar.time"
		tars="$tars $(secs "$work/tar.time")"
		sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
		/usr/bin/time -v bash -c "tar -C '$work/up/$set' -cf - p | zstd -q -1 -T0 | sha256sum >/dev/null" 2>"$work/tar.time"
		tarcs="$tarcs $(secs "$work/tar.time")"
	done
	echo "bench: $set tar|zstd|sha256sum runs, page cache warm:$tars; dropped first:$tarcs" >&2
	tarz=$(median $tars); tarc=$(median $tarcs)
	echo "bench: $set mirror cold / tar|zstd|sha256sum with the page cache dropped first: $(awk -v a="$tarc" -v b="$cold" 'BEGIN {printf "%.2f s / %.2f s = %.2f", b, a, a/b}')" >&2

	if [ -n "${BENCH_BASE:-}" ]; then
		awk -v set="$set (base $BENCH_BASE)" -v n=$n -v mib=$mib -v cold="$bcold" -v peak="$bpeak" -v noop="$bnoop" -v enc="$benc" -v tarz="$tarz" 'BEGIN {
			printf "| %s | %d | %d | %.2f | %.1f | %.0f | %s | %.2f | %.1f%% | %s | - | - | %.2f | %.2f |\n",
				set, n, mib, cold, mib/cold, n/cold, peak, noop, 100*noop/cold, enc, tarz, tarz/cold }'
	fi
	awk -v set="$set" -v n=$n -v mib=$mib -v cold="$cold" -v peak="$peak" -v noop="$noop" -v enc="$enc" -v script="$script" -v tarz="$tarz" 'BEGIN {
		sc = (script == "") ? "-" : sprintf("%.2f", script); sp = (script == "") ? "-" : sprintf("%.1fx", script/cold)
		printf "| %s | %d | %d | %.2f | %.1f | %.0f | %s | %.2f | %.1f%% | %s | %s | %s | %.2f | %.2f |\n",
			set, n, mib, cold, mib/cold, n/cold, peak, noop, 100*noop/cold, enc, sc, sp, tarz, tarz/cold }'
	tail -1 "$work/cold.out" >&2
	rm -rf "$place/script-$set" "$place/out-$set" "$place/state-$set"
done
echo "bench: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
