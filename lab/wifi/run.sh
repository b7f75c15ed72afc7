#!/usr/bin/env bash
# Runs the Wi-Fi lab: boots a Debian 6.1 kernel under qemu (software emulation, no KVM) with two
# mac80211_hwsim radios, runs the scenario scripts inside it and reads their PASS/FAIL lines from
# the serial console. Ends with "N passed, M failed" and exits non-zero on any failure, including
# a guest that never reports the end of its run.
#
# Everything comes from Debian's package registry: qemu, busybox-static, cpio and the Wi-Fi tools
# are installed on the host (as root), the kernel package is downloaded and unpacked into a cache.
# The guest has no network device, so nothing inside it can reach a network.
#
# Every run creates a new secret key, and every boot of the run gets the same key file. A scenario
# whose header contains the line "# lab-boots: 2" also runs in a second boot, which receives the
# values the scenario recorded in the first one ("RECORD scenario key value" lines).
#
# Usage: lab/wifi/run.sh [--timeout SECONDS] MACVEIL_BINARY [SCENARIO...]
#   MACVEIL_BINARY  a debug or release build, e.g. target/debug/macveil
#   SCENARIO        scenario names (file names under lab/wifi/scenarios without ".sh");
#                   all scenarios run when none is given
#
# Environment:
#   MACVEIL_LAB_CACHE    cache folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/macveil-wifi-lab)
#   MACVEIL_LAB_KERNEL   kernel package to use instead of the one linux-image-amd64 depends on
#   MACVEIL_LAB_TIMEOUT  maximum seconds from boot to power-off (default 600)

set -euo pipefail

lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly lab_dir
readonly host_packages=(qemu-system-x86 busybox-static cpio hostapd wpasupplicant iw tcpdump
    network-manager dbus udev iwd)
# NetworkManager needs a system bus (dbus-daemon), wpa_supplicant on that bus, and udevd. Without
# udevd, NetworkManager 1.42 in the guest leaves wlan0 unmanaged, because it waits for udev's
# database to record each link. systemd-udevd is udevadm under another name.
readonly guest_tools=(/usr/sbin/hostapd /usr/sbin/hostapd_cli /usr/sbin/wpa_supplicant
    /usr/sbin/wpa_cli /usr/sbin/iw /usr/bin/tcpdump
    /usr/sbin/NetworkManager /usr/bin/nmcli /usr/bin/dbus-daemon /bin/udevadm
    /usr/libexec/iwd /usr/bin/iwctl)
# Files the guest needs besides programs: the D-Bus policies that let NetworkManager,
# wpa_supplicant and iwd own their names and let root call them, and NetworkManager's package
# defaults.
readonly guest_data=(/usr/share/dbus-1/system.d/org.freedesktop.NetworkManager.conf
    /etc/dbus-1/system.d/wpa_supplicant.conf /usr/share/dbus-1/system.d/iwd-dbus.conf
    /usr/lib/NetworkManager/conf.d/no-mac-addr-change.conf)

# Load order of the kernel modules. Each module's "depends=" field is checked against the modules
# before it, so a kernel that needs one more module fails the build with its name.
# iwd computes hashes and ciphers through the kernel's AF_ALG sockets (af_alg, algif_hash,
# algif_skcipher). At start it checks the algorithms it may need, and iwd 2.3 exits with "DES
# support not found" without des_generic; Debian builds that, ecb, sha512_generic and md4 as
# modules.
readonly base_modules=(rfkill libarc4 cfg80211 mac80211 virtio_ring virtio ctr ccm cmac
    af_alg algif_hash algif_skcipher ecb sha512_generic libdes des_generic md4)
readonly radio_module=mac80211_hwsim

cache="${MACVEIL_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macveil-wifi-lab}"
timeout_seconds="${MACVEIL_LAB_TIMEOUT:-600}"
work=""
qemu_pid=""

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 2; }

cleanup() {
    if [[ -n "$qemu_pid" ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    if [[ -n "$work" ]]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

usage() {
    cat >&2 <<'EOF'
Usage: lab/wifi/run.sh [--timeout SECONDS] MACVEIL_BINARY [SCENARIO...]
  MACVEIL_BINARY  a debug or release build, e.g. target/debug/macveil
  SCENARIO        scenario names (file names under lab/wifi/scenarios without ".sh");
                  all scenarios run when none is given
EOF
    exit 2
}

# Prints the name of every scenario, in the order they run.
list_scenarios() {
    find "$lab_dir/scenarios" -maxdepth 1 -name '*.sh' -printf '%f\n' | sed 's/\.sh$//' | LC_ALL=C sort
}

# --- host packages ----------------------------------------------------------------------------

install_host_packages() {
    local missing=() package status
    for package in "${host_packages[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)"
        if [[ "$status" != installed ]]; then
            missing+=("$package")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return
    fi
    if ((EUID != 0)); then
        die "missing packages: ${missing[*]}; install them as root with apt-get install ${missing[*]}"
    fi
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# --- kernel -----------------------------------------------------------------------------------

# Prints the kernel package to use and its version, separated by a space. The package is
# MACVEIL_LAB_KERNEL at the version apt offers, or else the image that Debian's linux-image-amd64
# metapackage depends on. Returns 1 when apt's package lists contain no such package.
select_kernel_package() {
    local package version
    if [[ -n "${MACVEIL_LAB_KERNEL:-}" ]]; then
        package="$MACVEIL_LAB_KERNEL"
        version="$(apt-cache policy "$package" | awk '/Candidate:/ { print $2 }')"
    else
        # The metapackage pins its image exactly: "Depends: linux-image-6.1.0-N-amd64 (= VERSION)".
        read -r package version < <(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
            sed -n 's/^Depends: \(linux-image-[^ ,]*-amd64\) (= \([^)]*\)).*/\1 \2/p' | head -n 1) || true
    fi
    if [[ -z "$package" || -z "$version" || "$version" == "(none)" ]]; then
        log "apt's package lists offer no kernel package ${package:-for linux-image-amd64}"
        return 1
    fi
    if [[ "$package" != linux-image-6.1.0-*-amd64 ]]; then
        log "warning: $package is not a 6.1 kernel; the lab is proven on linux-image-6.1.0-*-amd64"
    fi
    printf '%s %s\n' "$package" "$version"
}

# Copies one module out of an unpacked kernel tree as an uncompressed .ko, because busybox insmod
# does not decompress. Checks that its dependencies are among the modules loaded before it.
extract_module() {
    local tree="$1" name="$2" loaded_before="$3" destination="$4" found dependency
    found="$(find "$tree" -path '*/modules/*' \( -name "$name.ko" -o -name "$name.ko.xz" \
        -o -name "$name.ko.zst" -o -name "$name.ko.gz" \) | head -n 1)"
    if [[ -z "$found" ]]; then
        die "module $name not found in the kernel package"
    fi
    case "$found" in
        *.ko.xz) xz -dc "$found" >"$destination" ;;
        *.ko.zst) zstd -qdc "$found" >"$destination" ;;
        *.ko.gz) gzip -dc "$found" >"$destination" ;;
        *) cp "$found" "$destination" ;;
    esac

    local depends
    depends="$(tr '\0' '\n' <"$destination" | sed -n 's/^depends=//p' | head -n 1)"
    for dependency in ${depends//,/ }; do
        if [[ " $loaded_before " != *" $dependency "* ]]; then
            die "module $name needs $dependency, which is not loaded before it; add it to base_modules in $0"
        fi
    done
}

# Downloads the selected kernel package once and keeps it with its kernel image. Prints the cache
# folder. Returns 1 when apt has no such package or the download fails.
prepare_kernel() {
    local selected package version folder
    selected="$(select_kernel_package)" || return 1
    read -r package version <<<"$selected"
    folder="$cache/kernel/${package}_$version"
    if [[ -f "$folder/complete" ]]; then
        printf '%s\n' "$folder"
        return
    fi

    log "downloading $package $version"
    local download="$work/kernel-download"
    mkdir -p "$download/tree" "$download/result"
    if ((EUID == 0)) && id _apt >/dev/null 2>&1; then
        # apt fetches as its sandbox user _apt, which needs to reach and write the folder.
        chmod 711 "$work"
        chown _apt "$download"
    fi
    if ! (cd "$download" && apt-get download -q "$package=$version" >&2); then
        log "apt-get download $package=$version failed"
        return 1
    fi
    mv "$download"/*.deb "$download/result/kernel.deb"
    dpkg-deb --fsys-tarfile "$download/result/kernel.deb" |
        tar -x -C "$download/tree" --wildcards './boot/vmlinuz-*'
    mv "$download"/tree/boot/vmlinuz-* "$download/result/vmlinuz"
    extract_vmlinux "$download/result/vmlinuz" "$download/result/vmlinux"
    printf 'package=%s\nversion=%s\n' "$package" "$version" >"$download/result/PACKAGE"
    touch "$download/result/complete"

    mkdir -p "$cache/kernel"
    rm -rf "$folder"
    mv "$download/result" "$folder"
    rm -rf "$download"
    # Kernels from earlier package lists are not needed any more.
    find "$cache/kernel" -mindepth 1 -maxdepth 1 ! -path "$folder" -exec rm -rf {} +
    printf '%s\n' "$folder"
}

# Unpacks the ELF kernel from a compressed bzImage, so that qemu can boot it directly through its
# PVH entry point (Debian enables CONFIG_PVH). Under software emulation the bzImage's own
# decompressor takes several seconds, which the ELF kernel skips. Leaves no file when the image
# is not xz-compressed, and the lab then boots the bzImage.
extract_vmlinux() {
    local image="$1" destination="$2" offset
    offset="$(grep -abo $'\xfd7zXZ\x00' "$image" | head -n 1 | cut -d: -f1)"
    if [[ -n "$offset" ]]; then
        tail -c +"$((offset + 1))" "$image" | xz -dc --single-stream >"$destination" 2>/dev/null || true
    fi
    if [[ "$(head -c 4 "$destination" 2>/dev/null)" != $'\x7fELF' ]]; then
        rm -f "$destination"
    fi
}

# Unpacks the kernel package and copies the modules the lab loads into $2, numbered in load order.
extract_modules() {
    local kernel="$1" destination="$2" tree="$work/kernel-tree"
    mkdir -p "$tree" "$destination"
    dpkg-deb -x "$kernel/kernel.deb" "$tree"

    local name index=0 loaded=""
    for name in "${base_modules[@]}" "$radio_module"; do
        extract_module "$tree" "$name" "$loaded" \
            "$destination/$(printf '%02d' "$index")-$name.ko"
        loaded="$loaded $name"
        index=$((index + 1))
    done
    rm -rf "$tree"
}

# --- initramfs --------------------------------------------------------------------------------

# Prints each shared library (and the dynamic loader) that a binary needs, as ldd resolves it.
shared_libraries() {
    local output
    if ! output="$(ldd "$1" 2>&1)"; then
        # ldd fails on static binaries ("not a dynamic executable"), which need nothing.
        return 0
    fi
    if grep -q 'not found' <<<"$output"; then
        die "$1 needs a library that is not installed: $(grep 'not found' <<<"$output" | head -n 1)"
    fi
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$output"
}

# Copies a file into the staging tree at the same path, following symlinks, so a library lands
# under its soname.
stage_file() {
    local source="$1" root="$2"
    mkdir -p "$root$(dirname "$source")"
    cp -L "$source" "$root$source"
}

# Prints the path of NetworkManager's Wi-Fi device plugin. NetworkManager loads its plugins only
# from the folder named after its exact version, e.g. /usr/lib/x86_64-linux-gnu/NetworkManager/1.42.4.
wifi_plugin() {
    local version plugins
    version="$(/usr/sbin/NetworkManager --version)" || die "NetworkManager --version failed"
    plugins=(/usr/lib/*/NetworkManager/"$version"/libnm-device-plugin-wifi.so)
    if [[ ! -f "${plugins[0]}" ]]; then
        die "NetworkManager $version has no Wi-Fi plugin libnm-device-plugin-wifi.so; reinstall network-manager"
    fi
    printf '%s\n' "${plugins[0]}"
}

# Prints the path of every file the base archive takes from the host: busybox, the Wi-Fi tools,
# NetworkManager with its Wi-Fi plugin, their shared libraries and the data files they read.
list_base_inputs() {
    local tool plugin
    plugin="$(wifi_plugin)" || exit 2
    {
        printf '%s\n' /bin/busybox "${guest_tools[@]}" "$plugin" "${guest_data[@]}"
        for tool in "${guest_tools[@]}" "$plugin"; do
            shared_libraries "$tool"
        done
    } | sort -u
}

# Builds the cached part of the initramfs: busybox, the Wi-Fi tools with their libraries and
# the kernel modules. Prints its path.
prepare_base_archive() {
    local kernel="$1" inputs key archive
    inputs="$(list_base_inputs)" || exit 2
    key="$({
        sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
        basename "$kernel"
        xargs sha256sum <<<"$inputs"
    } | sha256sum | cut -c1-16)"
    archive="$cache/base-$key.cpio"
    if [[ -f "$archive" ]]; then
        printf '%s\n' "$archive"
        return
    fi

    log "building the base initramfs"
    local root="$work/base-root" file applet
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lab/modules}
    while read -r file; do
        stage_file "$file" "$root"
    done <<<"$inputs"
    for applet in $(busybox --list-full); do
        if [[ ! -e "$root/$applet" ]]; then
            mkdir -p "$root/$(dirname "$applet")"
            ln -s /bin/busybox "$root/$applet"
        fi
    done
    extract_modules "$kernel" "$root/lab/modules"
    cp "$kernel/PACKAGE" "$root/lab/KERNEL"
    # tcpdump -Z root looks the user and its groups up. glibc 2.34 and later read these files
    # without a separate NSS module.
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    # netdev: wpa_supplicant's D-Bus policy names it, and dbus-daemon warns about a missing group.
    printf 'root:x:0:\nnetdev:x:100:\n' >"$root/etc/group"
    mkdir -p "$root"/usr/lib/systemd "$root"/etc/NetworkManager/{conf.d,system-connections} \
        "$root"/var/lib/NetworkManager "$root"/var/lib/dbus
    ln -s /bin/udevadm "$root/usr/lib/systemd/systemd-udevd"
    # D-Bus clients find the system bus at /var/run/dbus/system_bus_socket.
    ln -s /run "$root/var/run"

    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null --quiet -o -H newc --owner=0:0) >"$work/base.cpio"
    rm -rf "$root"
    mv "$work/base.cpio" "$archive"
    # Base archives built from earlier inputs are not needed any more.
    find "$cache" -maxdepth 1 -name 'base-*.cpio' ! -name "base-$key.cpio" -delete
    printf '%s\n' "$archive"
}

# Builds the part of the initramfs that changes with every run: /init, the scenarios, the list
# to run and the macveil binary with its libraries.
build_run_archive() {
    local macveil="$1" destination="$2"
    shift 2
    local root="$work/run-root" libraries library
    mkdir -p "$root/lab/scenarios" "$root/usr/local/bin"
    cp "$lab_dir/guest/init" "$root/init"
    cp "$lab_dir/guest/lib.sh" "$root/lab/lib.sh"
    chmod 755 "$root/init"

    local scenario
    for scenario in "$@"; do
        cp "$lab_dir/scenarios/$scenario.sh" "$root/lab/scenarios/"
        printf '%s\n' "$scenario" >>"$root/lab/selected.1"
    done

    # One secret key for every boot of the run, in the format macveil creates (a NetworkManager
    # v2 key: "nm-v2:" and the base64 of 32 random bytes), so that stable addresses can be
    # compared across boots.
    mkdir -p "$root/var/lib/macveil"
    chmod 700 "$root/var/lib/macveil"
    (umask 077 && printf 'nm-v2:%s' "$(head -c 32 /dev/urandom | base64 -w 0)" \
        >"$root/var/lib/macveil/secret_key")
    # NetworkManager's own key, different from macveil's, as on a machine where NetworkManager
    # ran before. A stable address that both derive then shows which key macveil read.
    mkdir -p "$root/var/lib/NetworkManager"
    (umask 077 && printf 'nm-v2:%s' "$(head -c 32 /dev/urandom | base64 -w 0)" \
        >"$root/var/lib/NetworkManager/secret_key")
    # A machine id for every boot of the run too: NetworkManager hashes a v2 key together with
    # it, and dbus-daemon needs one.
    mkdir -p "$root/etc"
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
    printf '\n' >>"$root/etc/machine-id"

    # A debug build carries hundreds of MB of debug information that the guest does not need.
    if ! strip -o "$root/usr/local/bin/macveil" "$macveil" 2>/dev/null; then
        cp "$macveil" "$root/usr/local/bin/macveil"
    fi
    libraries="$(shared_libraries "$macveil")"
    for library in $libraries; do
        stage_file "$library" "$root"
    done

    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null --quiet -o -H newc --owner=0:0) >"$destination"
    rm -rf "$root"
}

# Builds the archive that turns the next boot into boot number $2: the boot number, the scenarios
# to run again and the values recorded in the first boot.
build_boot_archive() {
    local destination="$1" boot="$2" records="$3"
    shift 3
    local root="$work/boot-root"
    mkdir -p "$root/lab"
    printf '%s\n' "$boot" >"$root/lab/boot"
    printf '%s\n' "$@" >"$root/lab/selected.$boot"
    cp "$records" "$root/lab/records"
    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null --quiet -o -H newc --owner=0:0) >"$destination"
    rm -rf "$root"
}

# Prints how many boots a scenario needs: the number on its "# lab-boots: N" line, else 1.
boots_of() {
    local boots
    boots="$(sed -n 's/^# lab-boots: *\([0-9]\)$/\1/p' "$lab_dir/scenarios/$1.sh" | head -n 1)"
    printf '%s\n' "${boots:-1}"
}

# --- boot -------------------------------------------------------------------------------------

# Drops carriage returns and the terminal control sequences that the firmware prints.
printable() {
    tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g'
}

# Boots the guest, copies its console to stdout as it arrives and stores it in the file $3.
# Returns 1, with a FAIL line added to the console, when the guest had to be stopped after the
# timeout or qemu failed.
boot_guest() {
    local kernel="$1" initrd="$2" console="$3" image
    : >"$console"
    image="$kernel/vmlinux"
    if [[ ! -f "$image" ]]; then
        image="$kernel/vmlinuz"
    fi
    # -nic none: the guest gets no network device at all.
    qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot -nic none \
        -kernel "$image" -initrd "$initrd" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 random.trust_cpu=on" \
        </dev/null >"$console" 2>"$work/qemu.stderr" &
    qemu_pid=$!

    local printed=0 size deadline=$((SECONDS + timeout_seconds)) timed_out=0
    while true; do
        size="$(stat -c %s "$console")"
        if ((size > printed)); then
            tail -c +"$((printed + 1))" "$console" | head -c "$((size - printed))" | printable
            printed=$size
        fi
        if ! kill -0 "$qemu_pid" 2>/dev/null; then
            break
        fi
        if ((SECONDS >= deadline)); then
            timed_out=1
            kill "$qemu_pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    local status=0
    wait "$qemu_pid" || status=$?
    qemu_pid=""
    tail -c +"$((printed + 1))" "$console" | printable

    if ((timed_out)); then
        printf 'FAIL lab: the guest did not power off within %s seconds\n' "$timeout_seconds" >>"$console"
        return 1
    fi
    if ((status != 0)); then
        printf 'FAIL lab: qemu exited with status %s: %s\n' "$status" \
            "$(tail -n 3 "$work/qemu.stderr" | tr '\n' ' ')" >>"$console"
        return 1
    fi
}

# Adds a FAIL line to the results file $1 of boot $2 when that boot never reported the end of
# its run, and prints the line that explains it.
check_end_of_run() {
    local results="$1" boot="$2"
    if grep -qx 'lab: done' "$results"; then
        return
    fi
    if ! grep -q '^FAIL lab:' "$results"; then
        printf 'FAIL lab: boot %s never reported the end of its run\n' "$boot" >>"$results"
    fi
    grep '^FAIL lab:' "$results" | tail -n 1
}

# --- main -------------------------------------------------------------------------------------

main() {
    local macveil="" scenarios=()
    while (($#)); do
        case "$1" in
            --timeout)
                timeout_seconds="${2:-}"
                shift $(($# > 1 ? 2 : 1))
                ;;
            -h | --help) usage ;;
            -*) die "unknown option $1" ;;
            *)
                if [[ -z "$macveil" ]]; then macveil="$1"; else scenarios+=("$1"); fi
                shift
                ;;
        esac
    done
    if [[ -z "$macveil" ]]; then
        usage
    fi
    if [[ ! "$timeout_seconds" =~ ^[1-9][0-9]*$ ]]; then
        die "invalid timeout '$timeout_seconds'; give a whole number of seconds"
    fi
    if [[ ! -x "$macveil" ]]; then
        die "macveil binary $macveil not found or not executable; build it with cargo build"
    fi
    if ((${#scenarios[@]} == 0)); then
        mapfile -t scenarios < <(list_scenarios)
    fi
    local scenario
    for scenario in "${scenarios[@]}"; do
        if [[ ! -f "$lab_dir/scenarios/$scenario.sh" ]]; then
            die "no scenario $scenario; the scenarios are: $(list_scenarios | tr '\n' ' ')"
        fi
    done

    local started=$SECONDS
    install_host_packages
    mkdir -p "$cache"
    work="$(mktemp -d "${TMPDIR:-/tmp}/macveil-wifi-lab.XXXXXX")"

    # Two runs at once share the cache, so the lock keeps one from reading a half-built file.
    local kernel base
    exec {lock_fd}>"$cache/lock"
    flock "$lock_fd"
    if ! kernel="$(prepare_kernel)"; then
        # Package lists that predate a kernel update name a version the mirror no longer has.
        if ((EUID != 0)); then
            die "no kernel package could be downloaded; run apt-get update as root, or set MACVEIL_LAB_KERNEL=linux-image-6.1.0-N-amd64"
        fi
        log "running apt-get update and trying again"
        apt-get update -qq >&2
        kernel="$(prepare_kernel)" ||
            die "no kernel package could be downloaded; set MACVEIL_LAB_KERNEL=linux-image-6.1.0-N-amd64 to one that apt-cache policy lists"
    fi
    base="$(prepare_base_archive "$kernel")"
    cp "$base" "$work/initrd"
    exec {lock_fd}>&-

    build_run_archive "$macveil" "$work/run.cpio" "${scenarios[@]}"
    # The kernel unpacks concatenated cpio archives in order, so the run archive adds to the base.
    cat "$work/run.cpio" >>"$work/initrd"
    log "kernel $(sed -n 's/^package=//p' "$kernel/PACKAGE") $(sed -n 's/^version=//p' "$kernel/PACKAGE"), prepared in $((SECONDS - started)) s"

    local second_boot=() name
    for name in "${scenarios[@]}"; do
        if (($(boots_of "$name") > 1)); then
            second_boot+=("$name")
        fi
    done

    local booted=$SECONDS results="$work/results"
    boot_guest "$kernel" "$work/initrd" "$work/console.1" || true
    tr -d '\r' <"$work/console.1" >"$results"
    check_end_of_run "$results" 1

    if ((${#second_boot[@]} > 0)); then
        log "second boot for ${second_boot[*]}"
        grep '^RECORD ' "$results" >"$work/records" || true
        build_boot_archive "$work/boot2.cpio" 2 "$work/records" "${second_boot[@]}"
        cat "$work/initrd" "$work/boot2.cpio" >"$work/initrd.2"
        boot_guest "$kernel" "$work/initrd.2" "$work/console.2" || true
        tr -d '\r' <"$work/console.2" >"$work/results.2"
        check_end_of_run "$work/results.2" 2
        cat "$work/results.2" >>"$results"
    fi
    log "boot to power-off took $((SECONDS - booted)) s, whole run $((SECONDS - started)) s"

    local passed failed
    passed="$(grep -c '^PASS ' "$results" || true)"
    failed="$(grep -c '^FAIL ' "$results" || true)"
    printf '%s passed, %s failed\n' "$passed" "$failed"
    if ((failed > 0 || passed == 0)); then
        exit 1
    fi
}

main "$@"
