#!/usr/bin/env bash
# `mirror serve` under load from a loopback client, against nginx serving
# the same DIR/current with the README's snippet, in the same run: C
# concurrent downloads (default 50) of mixed sizes (16 KiB, 256 KiB, 4 MiB)
# for D each; requests/s, MiB/s, p50/p99 latency, errors (must be 0).
#
#   scripts/bench/serve.sh [C] [D]
set -euo pipefail
cd "$(dirname "$0")/../.."
conc=${1:-50}
dur=${2:-10s}
work=$(mktemp -d /var/tmp/mirror-bench-serve.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/mirror" ./cmd/mirror
go build -o "$work/load" scripts/bench/serve-load.go
go run scripts/bench/import-gen.go "$work/in" 400 mixed
"$work/mirror" import --pub "$work/in/operator.pub" --repo "$work/repo" "$work/in/bench.tar.zst" >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(go version | cut -d' ' -f3), $(nginx -v 2>&1)"
echo "content: 400 files, $(du -sbL "$work/repo/current/" | cut -f1) bytes (every 20th 4 MiB, every other 5th 256 KiB, the rest 16 KiB)"

"$work/mirror" serve --repo "$work/repo" --listen 127.0.0.1:18080 2>/dev/null &
pids+=($!)

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:18081;
        root $work/repo/current;
        disable_symlinks on from=\$document_root;
        location / { try_files \$uri \$uri/ =404; }
    }
}
CONF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 1

"$work/load" -name "mirror serve" -base http://127.0.0.1:18080/ -urls "$work/in/urls" -c "$conc" -d "$dur"
"$work/load" -name "nginx" -base http://127.0.0.1:18081/ -urls "$work/in/urls" -c "$conc" -d "$dur"
