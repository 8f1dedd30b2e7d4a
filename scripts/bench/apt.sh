#!/usr/bin/env bash
# Benchmark of the apt source (docs/BENCHMARKS.md, section "apt"): the same
# filtered mirror made by aptly and by `mirror sync` + `mirror import`.
#
# The upstream: a signed archive made with dpkg-deb, apt-ftparchive and gpg
# (throwaway key): N packages (default 400) of SIZE KiB (default 256, random,
# so incompressible like real .debs), every third one depending on two
# others ("pA, pB (>= 1.0)"; no alternatives: aptly -filter-with-deps and
# mirror resolve "a | b" differently — aptly took 168 packages where
# mirror took 137 on such a graph — so the same set needs plain ones), suite "stable", component main, amd64, served
# from loopback by nginx. The filter: the packages named p00* (100 of 400)
# with their Depends closure.
#
#   aptly:  mirror create (filter + -filter-with-deps, its own keyring),
#           mirror update, snapshot create, publish snapshot (signed by a
#           throwaway gpg key) — all four in one timed run
#   mirror: mirror sync (downloads, checks, generated indexes signed by the
#           operator, bundle) then mirror import (bundle checked, published)
#           — both in one timed run; and each on its own
#
# Wall time, CPU time (user + system, less sensitive than wall time to other
# load on the machine) and peak RSS come from /usr/bin/time -v (peak RSS:
# the largest process of the run). Both tools start from empty state, page cache warm
# (the upstream files were just written).
#
# RUNS (default 3) alternating pairs are timed on the same archive, each
# from empty state, so that both tools see the same machine load. A last
# row gives the median of every column.
#
# BENCH_BASE=COMMIT also builds that commit's mirror and times it in every
# run beside HEAD's (HEAD first in odd runs, the base first in even ones),
# as extra rows marked "base", with their own median row.
#
#   [BENCH_BASE=COMMIT] scripts/bench/apt.sh [N] [SIZE_KIB] [RUNS]
# Needs: go, nginx, aptly, dpkg-deb, apt-ftparchive, gpg, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-400}
size_kib=${2:-256}
runs=${3:-3}
work=$(mktemp -d /tmp/mirror-bench-apt.XXXXXX)
nginx_pid=""
cleanup() {
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
	gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
for tool in go nginx aptly dpkg-deb apt-ftparchive gpg /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

mkdir -p "$work/src"
git archive HEAD | tar -x -C "$work/src"
(cd "$work/src" && go build -o "$work/mirror" ./cmd/mirror)
echo "bench: mirror built from commit $(git rev-parse --short HEAD)" >&2
if [ -n "${BENCH_BASE:-}" ]; then
	mkdir -p "$work/base"
	git archive "$BENCH_BASE" | tar -x -C "$work/base"
	(cd "$work/base" && go build -o "$work/mirror-base" ./cmd/mirror)
	echo "bench: base mirror built from commit $(git rev-parse --short "$BENCH_BASE")" >&2
fi

# The throwaway archive key (and the aptly publishing key).
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg -q --batch --passphrase '' --quick-gen-key 'Bench Archive <archive@bench.invalid>' ed25519 sign never
gpg -q --batch --passphrase '' --quick-gen-key 'Bench Publisher <publisher@bench.invalid>' ed25519 sign never
gpg -q --armor --export archive@bench.invalid >"$work/archive.asc"
gpg -q --export archive@bench.invalid >"$work/trusted.gpg"

# The archive.
up=$work/up
echo "bench: building $n packages of $size_kib KiB with dpkg-deb" >&2
for i in $(seq 0 $((n - 1))); do
	name=$(printf 'p%04d' "$i")
	d=$work/build/$name
	mkdir -p "$d/DEBIAN" "$d/usr/share/$name"
	{
		echo "Package: $name"
		echo "Version: 1.0-1"
		echo "Architecture: amd64"
		echo "Maintainer: Bench <bench@bench.invalid>"
		if [ $((i % 3)) -eq 0 ]; then
			printf 'Depends: p%04d, p%04d (>= 1.0)\n' $(((i * 7 + 3) % n)) $(((i * 7 + 5) % n))
		fi
		echo "Description: benchmark package $name"
	} >"$d/DEBIAN/control"
	head -c $((size_kib * 1024)) /dev/urandom >"$d/usr/share/$name/data"
	mkdir -p "$up/pool/main/p/$name"
	dpkg-deb -Znone --root-owner-group --build "$d" "$up/pool/main/p/$name/${name}_1.0-1_amd64.deb" >/dev/null
	rm -rf "$d"
done
mkdir -p "$up/dists/stable/main/binary-amd64"
(cd "$up" && apt-ftparchive --arch amd64 packages pool/main >dists/stable/main/binary-amd64/Packages)
xz -k "$up/dists/stable/main/binary-amd64/Packages"
gzip -k "$up/dists/stable/main/binary-amd64/Packages"
(cd "$up/dists/stable" && apt-ftparchive -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
	-o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main release . >"$work/Release" && mv "$work/Release" Release)
gpg -q --batch -u archive@bench.invalid --clearsign -o "$up/dists/stable/InRelease" "$up/dists/stable/Release"
gpg -q --batch -u archive@bench.invalid --armor --detach-sign -o "$up/dists/stable/Release.gpg" "$up/dists/stable/Release"
mib=$(du -sm "$up/pool" | cut -f1)

port=$((20000 + RANDOM % 20000))
# The server: scripts/bench/lib-upstream.sh's nginx over $work/up.
. scripts/bench/lib-upstream.sh
start_nginx "$port"
url="http://127.0.0.1:$port"

secs() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }
cpu() { awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.2f", s}' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

"$work/mirror" keygen --out "$work/op" --unencrypted 2>/dev/null >/dev/null
echo "bench: $n packages x $size_kib KiB ($mib MiB upstream); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); aptly $(aptly version | awk '{print $3}')" >&2
# One timed run of a mirror build ($1: binary, $2: label for the row).
time_mirror() {
	local bin=$1 label=$2
	cat >"$work/mirror.sh" <<SCRIPT
set -e
/usr/bin/time -v -o $work/sync.time $bin sync --config $work/mirror.toml
/usr/bin/time -v -o $work/import.time $bin import --pub $work/op/operator.pub --repo $work/repo $work/out/*.tar.zst
SCRIPT
	/usr/bin/time -v bash "$work/mirror.sh" >"$work/mirror.out" 2>"$work/mirror.time" || { cat "$work/mirror.out" "$work/mirror.time"; exit 1; }
	find -L "$work/repo/current/bench/pool" -name '*.deb' -printf '%f\n' | sort >"$work/mirror.debs"
	mirror_n=$(wc -l <"$work/mirror.debs")
	if ! cmp -s "$work/aptly.debs" "$work/mirror.debs"; then
		echo "bench: aptly published $aptly_n .debs, mirror$label $mirror_n: not the same set" >&2
		diff "$work/aptly.debs" "$work/mirror.debs" | head >&2
		exit 1
	fi
	[ "$r" = 1 ] && echo "bench: aptly and mirror$label published the same $mirror_n .debs" >&2
	echo "| $r$label | $aptly_row | $(secs "$work/mirror.time") | $(cpu "$work/mirror.time") | $(rss "$work/mirror.time") | $(secs "$work/sync.time") | $(rss "$work/sync.time") | $(secs "$work/import.time") | $(rss "$work/import.time") | $(cut -d' ' -f1 /proc/loadavg) |" | tee -a "$work/rows$label"
	rm -rf "$work/out" "$work/state" "$work/repo"
}

cat >"$work/mirror.toml" <<CONF
jobs = 8
[operator]
key = "$work/op/operator.key"
[output]
dir = "$work/out"
state = "$work/state"
[[trust.key]]
name = "archive"
file = "$work/archive.asc"
allow = ["bench:*"]
[[source]]
name = "bench"
type = "apt"
url = "$url/"
suites = ["stable"]
components = ["main"]
architectures = ["amd64"]
packages = ["p00*"]
with_dependencies = true
CONF
cat >"$work/aptly.conf" <<CONF
{ "rootDir": "$work/aptly", "downloadConcurrency": 8, "architectures": ["amd64"], "gpgProvider": "gpg" }
CONF
cat >"$work/aptly.sh" <<SCRIPT
set -e
aptly -config=$work/aptly.conf mirror create -keyring=$work/trusted.gpg -architectures=amd64 -filter='Name (% p00*)' -filter-with-deps bench $url/ stable main
aptly -config=$work/aptly.conf mirror update -keyring=$work/trusted.gpg bench
aptly -config=$work/aptly.conf snapshot create snap from mirror bench
aptly -config=$work/aptly.conf publish snapshot -gpg-key=publisher@bench.invalid -distribution=stable snap
SCRIPT

echo "bench: load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "| run | aptly wall s | aptly CPU s | aptly peak RSS MiB | mirror wall s | mirror CPU s | mirror peak RSS MiB | sync wall s | sync RSS MiB | import wall s | import RSS MiB | load avg |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
: >"$work/rows"
for r in $(seq 1 "$runs"); do
	/usr/bin/time -v bash "$work/aptly.sh" >"$work/aptly.out" 2>"$work/aptly.time" || { cat "$work/aptly.out" "$work/aptly.time"; exit 1; }
	find "$work/aptly/public/pool" -name '*.deb' -printf '%f\n' | sort >"$work/aptly.debs"
	aptly_n=$(wc -l <"$work/aptly.debs")
	aptly_row="$(secs "$work/aptly.time") | $(cpu "$work/aptly.time") | $(rss "$work/aptly.time")"
	rm -rf "$work/aptly"
	if [ -z "${BENCH_BASE:-}" ]; then
		time_mirror "$work/mirror" ""
	elif [ $((r % 2)) -eq 1 ]; then
		time_mirror "$work/mirror" ""
		time_mirror "$work/mirror-base" " base"
	else
		time_mirror "$work/mirror-base" " base"
		time_mirror "$work/mirror" ""
	fi
done
# Medians of every column (the load column too).
median_row() {
	awk -F'|' -v label="$2" '
		{ for (c = 3; c <= NF - 1; c++) v[c, NR] = $c + 0; n = NR; cols = NF - 1 }
		END {
			printf "| median%s |", label
			for (c = 3; c <= cols; c++) {
				k = 0
				for (i = 1; i <= n; i++) a[++k] = v[c, i]
				for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
				m = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
				printf " %s |", m
			}
			printf "\n"
		}' "$1"
}
median_row "$work/rows" ""
[ -n "${BENCH_BASE:-}" ] && median_row "$work/rows base" " base"
true
