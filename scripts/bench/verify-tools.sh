#!/usr/bin/env bash
# verify-tools.sh: signature verifications per second of the stock tools
# (gpgv, minisign -V, ssh-keygen -Y verify) run once per file over N 8 KiB
# files in a shell loop, as a script would, and in the same run the Go
# benchmarks of package verify over an 8 KiB file (go test -bench). Prints
# files/second for each and the ratio verify / stock tool.
#
#   scripts/bench/verify-tools.sh [N]      (default N=200)
set -euo pipefail
n=${1:-200}
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in gpg gpgv minisign ssh-keygen go; do
	command -v "$tool" >/dev/null || { echo "verify-tools: $tool is missing" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
cd "$work"

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $n files of 8 KiB; every signature is made first, only verification is timed"
mkdir files
for i in $(seq "$n"); do head -c 8192 /dev/urandom >"files/$i"; done

g() { gpg --batch --quiet --no-tty --passphrase '' --pinentry-mode loopback "$@"; }
for k in ed25519 rsa2048 nistp256; do
	g --quick-gen-key "$k <$k@bench>" "$k" sign never
	g --export "$k@bench" >"$k.gpg"
	for i in $(seq "$n"); do g -u "$k@bench" --detach-sign -o "files/$i.$k.sig" "files/$i"; done
done
minisign -G -W -f -p mini.pub -s mini.key >/dev/null
for i in $(seq "$n"); do minisign -S -s mini.key -m "files/$i" -x "files/$i.minisig" >/dev/null; done
for spec in ed25519:ed25519: ecdsa:ecdsa:256 rsa:rsa:3072; do
	IFS=: read -r name type bits <<<"$spec"
	ssh-keygen -q -t "$type" ${bits:+-b "$bits"} -N '' -f "ssh-$name"
	printf 'bench namespaces="file" %s\n' "$(cut -d' ' -f1,2 "ssh-$name.pub")" >"allowed-$name"
	for i in $(seq "$n"); do ssh-keygen -q -Y sign -f "ssh-$name" -n file "files/$i" 2>/dev/null; mv "files/$i.sig" "files/$i.ssh-$name.sig"; done
done

declare -A tool_rate
# timeloop NAME COMMAND...: runs COMMAND with {} replaced by each file number.
timeloop() {
	local name=$1
	shift
	local start end
	start=$(date +%s%N)
	for i in $(seq "$n"); do
		"${@//\{\}/$i}" >/dev/null 2>&1 </dev/null || { echo "verify-tools: $name failed on file $i" >&2; exit 1; }
	done
	end=$(date +%s%N)
	tool_rate[$name]=$(awk -v n="$n" -v ns=$((end - start)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }')
	printf '%-28s %10s files/s\n' "$name" "${tool_rate[$name]}"
}
sshverify() { ssh-keygen -Y verify -f "allowed-$1" -I bench -n file -s "files/$2.ssh-$1.sig" <"files/$2"; }

echo "## stock tools, one process per file"
timeloop "gpgv ed25519" gpgv --keyring "$work/ed25519.gpg" "files/{}.ed25519.sig" "files/{}"
timeloop "gpgv rsa2048" gpgv --keyring "$work/rsa2048.gpg" "files/{}.rsa2048.sig" "files/{}"
timeloop "gpgv p256" gpgv --keyring "$work/nistp256.gpg" "files/{}.nistp256.sig" "files/{}"
timeloop "minisign -V" minisign -V -q -p mini.pub -m "files/{}" -x "files/{}.minisig"
timeloop "ssh-keygen -Y verify ed25519" sshverify ed25519 "{}"
timeloop "ssh-keygen -Y verify ecdsa" sshverify ecdsa "{}"
timeloop "ssh-keygen -Y verify rsa" sshverify rsa "{}"

echo "## package verify (go test -bench, same 8 KiB size, one goroutine)"
cd "$root"
bench=$(go test ./verify -run '^$' -bench '^BenchmarkVerify' -benchtime 2s -count 1)
echo "$bench" | grep '^Benchmark'
rate() { echo "$bench" | awk -v b="$1" '$1 ~ "^"b"(-[0-9]+)?$" { for (i = 1; i <= NF; i++) if ($(i+1) == "files/s") print $i }'; }

echo "## ratio verify / stock tool"
for pair in "OpenPGPEd25519:gpgv ed25519" "OpenPGPRSA2048:gpgv rsa2048" "OpenPGPP256:gpgv p256" "Minisign:minisign -V" \
	"SSHEd25519:ssh-keygen -Y verify ed25519" "SSHECDSA256:ssh-keygen -Y verify ecdsa" "SSHRSA:ssh-keygen -Y verify rsa"; do
	b=${pair%%:*} t=${pair#*:}
	r=$(rate "BenchmarkVerify$b")
	awk -v b="$b" -v t="$t" -v r="$r" -v s="${tool_rate[$t]}" 'BEGIN { printf "%-16s %10.0f files/s vs %-28s %8.1f files/s: %6.1fx\n", b, r, t, s, r / s }'
done
