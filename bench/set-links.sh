#!/usr/bin/env bash
# Compares three ways of giving 1,000 veth links new hardware addresses, in one run:
#   1. one 'macveil set' call with every link (release build; includes reading every address
#      back, removing stale IPv6 addresses and recording reference addresses),
#   2. one 'ip -batch' call with one 'link set dev X address Y' line per link,
#   3. one 'macchanger' call per link.
# It creates its own network namespace and deletes it on exit, and never touches the host's
# links. Needs root, iproute2 and macchanger.
#
# Usage: bench/set-links.sh [--up]
#   --up   bring every link (and its peer) up first, so that each has an IPv6 link-local
#          address derived from its hardware address that macveil must replace.
set -euo pipefail
cd "$(dirname "$0")/.."

links=1000
up=false
if [ "${1:-}" = "--up" ]; then
    up=true
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/set-links.sh: needs root to create a network namespace" >&2
    exit 2
fi
for tool in ip macchanger cargo; do
    command -v "$tool" >/dev/null || { echo "bench/set-links.sh: $tool is not installed" >&2; exit 2; }
done

cargo build --release --locked --quiet
macveil="$PWD/target/release/macveil"

netns="macveil-bench-$$"
work="$(mktemp -d)"
cleanup() {
    ip netns del "$netns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$netns"

# 500 veth pairs are 1,000 links: b0..b999, where b(2k+1) is the peer of b(2k).
for ((i = 0; i < links; i += 2)); do
    echo "link add b$i type veth peer name b$((i + 1))"
done >"$work/create"
ip -n "$netns" -batch "$work/create"
for ((i = 0; i < links; i++)); do echo "link set dev b$i down"; done >"$work/down"
for ((i = 0; i < links; i++)); do echo "link set dev b$i up"; done >"$work/up"
names=()
for ((i = 0; i < links; i++)); do names+=("b$i"); done

# Prints the number of links whose address differs from the snapshot in file $1.
changed_since() {
    ip -n "$netns" -br link show | sort >"$work/now"
    comm -13 "$1" "$work/now" | grep -c '^b' || true
}

snapshot() {
    ip -n "$netns" -br link show | sort >"$1"
}

now_ns() { date +%s%N; }

# The machine may be busy with other work, so each method runs $rounds times, interleaved, and
# the median counts. Every round gives every link a new address.
rounds=5
macveil_times=()
ip_times=()
macchanger_times=()
macveil_changed=$links
ip_changed=$links
macchanger_changed=$links
least() { if [ "$2" -lt "$1" ]; then echo "$2"; else echo "$1"; fi; }

for ((round = 1; round <= rounds; round++)); do
    if $up; then
        # Taking the links down and up makes the kernel derive fresh link-local addresses from
        # the current hardware addresses, which macveil then has to remove.
        ip -n "$netns" -batch "$work/down"
        ip -n "$netns" -batch "$work/up"
        sleep 2
    fi
    # Fresh addresses for ip and macchanger, generated before any clock starts.
    "$macveil" gen --random --count "$links" >"$work/for-ip"
    "$macveil" gen --random --count "$links" >"$work/for-macchanger"
    paste -d' ' <(printf '%s\n' "${names[@]}") "$work/for-ip" |
        awk '{ print "link set dev " $1 " address " $2 }' >"$work/ip-batch"
    paste -d' ' <(printf '%s\n' "${names[@]}") "$work/for-macchanger" >"$work/macchanger-list"

    # 1. macveil: one call for every link.
    snapshot "$work/before"
    start=$(now_ns)
    "$macveil" --quiet set "${names[@]}" --random --netns "$netns" --state-dir "$work/state" >/dev/null
    end=$(now_ns)
    macveil_times+=($((end - start)))
    macveil_changed=$(least "$macveil_changed" "$(changed_since "$work/before")")

    # 2. ip -batch: the same number of changes in one call, without reading anything back.
    snapshot "$work/before"
    start=$(now_ns)
    ip -n "$netns" -batch "$work/ip-batch"
    end=$(now_ns)
    ip_times+=($((end - start)))
    ip_changed=$(least "$ip_changed" "$(changed_since "$work/before")")

    # 3. macchanger: one process per link, all inside the namespace.
    snapshot "$work/before"
    start=$(now_ns)
    ip netns exec "$netns" bash -c '
        while read -r name address; do
            macchanger -m "$address" "$name" >/dev/null
        done <"$1"' _ "$work/macchanger-list"
    end=$(now_ns)
    macchanger_times+=($((end - start)))
    macchanger_changed=$(least "$macchanger_changed" "$(changed_since "$work/before")")
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
macveil_ns=$(median "${macveil_times[@]}")
ip_ns=$(median "${ip_times[@]}")
macchanger_ns=$(median "${macchanger_times[@]}")

seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "median of $rounds rounds; links: $links veth ($( $up && echo "up, with IPv6 link-local addresses" || echo "down"))"
echo "kernel: $(uname -r), cores: $(nproc)"
printf '%-34s %8s s  %4s links changed\n' "macveil set (one call, read-back)" "$(seconds "$macveil_ns")" "$macveil_changed"
printf '%-34s %8s s  %4s links changed\n' "ip -batch (one call)" "$(seconds "$ip_ns")" "$ip_changed"
printf '%-34s %8s s  %4s links changed\n' "macchanger (one call per link)" "$(seconds "$macchanger_ns")" "$macchanger_changed"
echo "macveil / ip -batch:    $(ratio "$macveil_ns" "$ip_ns")x (target: at most 1.5x)"
echo "macchanger / macveil:   $(ratio "$macchanger_ns" "$macveil_ns")x (target: at least 20x)"

if [ "$macveil_changed" -ne "$links" ] || [ "$ip_changed" -ne "$links" ] ||
    [ "$macchanger_changed" -ne "$links" ]; then
    echo "bench/set-links.sh: not every link changed; the times above are not comparable" >&2
    exit 1
fi
