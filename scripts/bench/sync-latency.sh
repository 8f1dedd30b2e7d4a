#!/usr/bin/env bash
# A no-op `mirror sync` against a distant upstream: the files of
# scripts/bench/sync.sh's small set (N x 8 KiB, one minisign signature
# each) served by nginx on loopback behind scripts/bench/latency-proxy.go,
# which holds every chunk DELAY each way (a round trip of 2 x DELAY).
# Each build makes its state with a cold run through the proxy at no delay,
# then runs the no-op through it at DELAY, RUNS times.
#
#   scripts/bench/sync-latency.sh [N] [DELAY] [RUNS]      default 20000 10ms 2
#   BENCH_BASE=COMMIT scripts/bench/sync-latency.sh ...   also COMMIT's build
#
# Needs: go, nginx, minisign, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20000} delay=${2:-10ms} runs=${3:-2}
work=$(mktemp -d /tmp/mirror-bench-latency.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
for tool in nginx minisign /usr/bin/time go; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
builds="head"
mkdir -p "$work/head"
git archive HEAD | tar -x -C "$work/head"
if [ -n "${BENCH_BASE:-}" ]; then
	builds="head base"
	mkdir -p "$work/base"
	git archive "$BENCH_BASE" | tar -x -C "$work/base"
fi
for b in $builds; do (cd "$work/$b" && go build -o "$work/mirror-$b" ./cmd/mirror); done
go build -o "$work/proxy" scripts/bench/latency-proxy.go
echo "bench: HEAD $(git rev-parse --short HEAD)${BENCH_BASE:+, base $BENCH_BASE}; $n files; delay $delay each way" >&2

. scripts/bench/lib-upstream.sh
make_set small "$n" 8192
"$work/mirror-head" keygen --out "$work/op" --unencrypted >/dev/null 2>&1
port=$((20000 + RANDOM % 20000)) pport=$((port + 1))
start_nginx "$port"
pids+=("$nginx_pid")
proxy() { # DELAY: (re)start the proxy
	[ -n "${ppid:-}" ] && { kill "$ppid"; wait "$ppid" 2>/dev/null || true; }
	"$work/proxy" -listen "127.0.0.1:$pport" -target "127.0.0.1:$port" -delay "$1" &
	ppid=$!
	pids+=($ppid)
	sleep 0.5
}
for b in $builds; do
	cat >"$work/$b.toml" <<CONF
[operator]
key = "$work/op/operator.key"
[output]
dir = "$work/out-$b"
state = "$work/state-$b"
[[trust.key]]
name = "rel"
file = "$work/rel.pub"
allow = ["small:p/*"]
[[source]]
name = "small"
type = "files"
url = "http://127.0.0.1:$pport/small/"
files = ["p/*.tgz"]
listing = "$work/small.listing"
signatures = ["{file}.minisig"]
CONF
done
proxy 0s
for b in $builds; do "$work/mirror-$b" sync --config "$work/$b.toml" >/dev/null; done
proxy "$delay"
secs() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }
for run in $(seq "$runs"); do
	for b in $builds; do
		/usr/bin/time -v "$work/mirror-$b" sync --config "$work/$b.toml" >"$work/out" 2>"$work/time" || { cat "$work/out" "$work/time"; exit 1; }
		grep -q "nothing new" "$work/out" || { echo "not a no-op:"; cat "$work/out"; exit 1; }
		echo "$b run $run: no-op $(secs "$work/time") s through a $delay-each-way proxy"
	done
done
