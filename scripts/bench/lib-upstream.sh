# Shared by scripts/bench/sync.sh, sync-latency.sh and apt.sh (sourced, not run):
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

# start_nginx PORT: nginx serving $work/up on 127.0.0.1:PORT, one worker per
# core (worker_processes auto, as nginx's own configuration has it;
# BENCH_NGINX_WORKERS=N for N), sendfile, keep-alive; its pid in nginx_pid.
# Until session 4 the script ran one worker, which reads the files with
# blocking reads one at a time: after the page cache is dropped, that
# worker was part of what the cold runs measured (docs/BENCHMARKS.md,
# "Session 4", has both).
start_nginx() {
	mkdir -p "$work/nginx/logs"
	cat >"$work/nginx/nginx.conf" <<CONF
worker_processes ${BENCH_NGINX_WORKERS:-auto};
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
