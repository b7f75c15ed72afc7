#!/usr/bin/env bash
# Measures the daemon's reaction time, start-up time, memory and idle wake-ups, and prints them
# with ratios (benches/daemon.rs describes each measurement). Builds the release binary first.
#
# Run it as root on Debian 12 or newer; it creates its own network and mount namespaces and
# never touches the host's links. It takes about three minutes plus the build. Options go to
# the benchmark: --samples N (reaction samples per method, default 200), --links N (links for
# the footprint, default 1000), --quiet-seconds N (each idle period, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/daemon.sh: needs root for network and mount namespaces" >&2
    exit 1
fi

# iproute2 and util-linux for the namespaces, udev for the udev rule's lab, strace to count
# system calls while the daemon is idle.
packages=(iproute2 util-linux udev strace)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench/daemon.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cargo bench --locked --bench daemon -- "$@"
