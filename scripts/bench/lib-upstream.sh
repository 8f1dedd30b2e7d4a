# Shared by scripts/bench/sync.sh and sync-latency.sh (sourced, not run):
# a signed file set and the nginx that serves it, both under $work.

# make_set NAME COUNT SIZE: COUNT random (incompressible, like packages)
# files of SIZE bytes at $work/up/NAME/p/fNNNNNN.tgz, each with a minisign
# signature by $work/rel.key (made on first use, public key $work/rel.pub),
# and the listing $work/NAME.listing.
make_set() {
	local dir="$work/up/$1/p" n=$2 size=$3
	mkdir -p "$dir"
	[ -f "$work/rel.key" ] || minisign -G -W -p "$work/rel.pub" -s "$work/rel.key" >/dev/null
	# One large random stream cut into files: fast.
	head -c $((n * size)) /dev/urandom | split -a 6 -d -b "$size" - "$dir/f"
	for f in "$dir"/f*; do mv "$f" "$f.tgz"; done
	(cd "$work/up/$1" && ls p | grep -v minisig | sed 's|^|p/|' >"$work/$1.listing")
	# The real minisign signs all files of the set in one run.
	(cd "$dir" && ls | xargs -n 2000 minisign -S -s "$work/rel.key" -m >/dev/null)
}

# start_nginx PORT: nginx serving $work/up on 127.0.0.1:PORT, one worker,
# sendfile, keep-alive; its pid in nginx_pid.
# One worker: during a no-op of 20,000 files it used 0.15 s of CPU in a
# 1.04 s run, and with worker_processes 2 neither the no-op (1.06 / 1.05 s)
# nor the bare request floor changed beyond the noise (12:19 UTC, load 4).
start_nginx() {
	mkdir -p "$work/nginx/logs"
	cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000;
	server {
		listen 127.0.0.1:$1;
		root $work/up;
	}
}
CONF
	[ "$(id -u)" -eq 0 ] && sed -i '1i user root;' "$work/nginx/nginx.conf"
	nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
	nginx_pid=$!
	sleep 0.5
}
