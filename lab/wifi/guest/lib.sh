# Helpers that the scenario scripts source (busybox sh). A scenario prints one "PASS check" or
# "FAIL check: reason" line per check, writes its logs under $LAB_LOGS and exits non-zero when any
# check failed. Every process it starts is stopped by PID when it exits.
#
# Names used throughout: wlan0 is the station, wlan1 the access point, and hwsim0 the monitor that
# receives a copy of every frame that either radio transmits, with a radiotap header.

LAB_LOGS="${LAB_LOGS:-/tmp}"
LAB_SCENARIO="${LAB_SCENARIO:-unknown}"
LAB_BOOT="${LAB_BOOT:-1}"
lab_failed=0
lab_pids=""
lab_signal_status=""

pass() {
    echo "PASS $1"
}

fail() {
    check="$1"
    shift
    echo "FAIL $check: $*"
    lab_failed=1
}

# Stops every process started with start_background, then exits with the scenario's result, or
# with 128 + the signal number when a signal ended it.
finish() {
    for pid in $lab_pids; do
        kill "$pid" 2>/dev/null
    done
    for pid in $lab_pids; do
        wait "$pid" 2>/dev/null
    done
    lab_pids=""
    exit "${lab_signal_status:-$lab_failed}"
}
trap finish EXIT
trap 'lab_signal_status=130; exit' INT
trap 'lab_signal_status=143; exit' TERM

# Runs "$@" in the background with its output in $LAB_LOGS/NAME.log and stores its PID in the
# variable NAME_pid.
start_background() {
    name="$1"
    shift
    "$@" >"$LAB_LOGS/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    lab_pids="$lab_pids $!"
}

# Stops one process started with start_background, with SIGINT so that it can flush its output.
stop_background() {
    eval "pid=\$${1}_pid"
    if [ -z "$pid" ]; then
        return
    fi
    kill -INT "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    lab_pids="$(echo "$lab_pids" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')"
}

# Runs the shell command $2 every 0.2 s until it succeeds; returns 1 after $1 seconds.
wait_until() {
    limit="$1"
    condition="$2"
    tries=$((limit * 5))
    while [ "$tries" -gt 0 ]; do
        if eval "$condition"; then
            return 0
        fi
        sleep 0.2
        tries=$((tries - 1))
    done
    return 1
}

current_address() {
    cat "/sys/class/net/$1/address"
}

# The radio's permanent address, as the wireless phy behind the interface reports it.
permanent_address() {
    cat "/sys/class/net/$1/phy80211/macaddress"
}

# --- capture on hwsim0 ---------------------------------------------------------------------

capture_marker=macveil-lab-end-of-capture

start_capture() {
    ip link set hwsim0 up
    # -Z root: Debian's tcpdump otherwise switches to a "tcpdump" user that the guest lacks.
    start_background tcpdump tcpdump -i hwsim0 -Z root -U -n -w "$LAB_LOGS/capture.pcap"
    wait_until 10 "grep -qs 'listening on hwsim0' '$LAB_LOGS/tcpdump.log'"
}

# Decodes the capture with link-level headers (-e), so that each frame shows its addresses.
decode_capture() {
    tcpdump -r "$LAB_LOGS/capture.pcap" -Z root -n -e -t 2>/dev/null
}

# Stops the station and the access point, then stops the capture once it contains every frame
# they sent, and writes the decoded frames to $LAB_LOGS/capture.log. tcpdump drops the frames
# still queued when it stops. So wlan1 sends a probe request for a marker SSID last, and tcpdump
# is stopped only after that frame is in the file. hwsim0 receives frames in the order they are
# sent, so every earlier frame is in the file too. Returns 1 when the marker never arrives.
stop_capture() {
    stop_background wpa_supplicant
    stop_background hostapd
    ip link set wlan1 up
    iw dev wlan1 scan freq 2412 ssid "$capture_marker" >/dev/null 2>>"$LAB_LOGS/tcpdump.log"
    marker_seen=0
    if wait_until 10 "decode_capture | grep -q 'Probe Request ($capture_marker)'"; then
        marker_seen=1
    fi
    stop_background tcpdump
    decode_capture >"$LAB_LOGS/capture.log"
    [ "$marker_seen" = 1 ]
}

# Prints the source address (SA) of each captured frame whose line matches the pattern $1, for
# example "Probe Request" or "Assoc Request".
captured_sources() {
    grep -e "$1" "$LAB_LOGS/capture.log" | sed -n 's/.* SA:\([0-9a-f:]\{17\}\).*/\1/p'
}

# Prints how many decoded frames name the address $1 in any header field (SA, DA, BSSID, RA, TA).
# tcpdump writes each address after a field name such as "SA:", or after a space.
count_frames_with_address() {
    grep -cE "(^|[^0-9a-f:]|[A-Z]:)$1([^0-9a-f:]|\$)" "$LAB_LOGS/capture.log"
}

# Prints the WPS UUID-E attribute of every probe request sent from the address $1, as 32 hex
# digits, one line each. tcpdump -x dumps the frame body, which contains the WPS element's
# attributes as type-length-value fields. UUID-E is type 0x1047 with length 16.
captured_wps_uuids() {
    tcpdump -r "$LAB_LOGS/capture.pcap" -Z root -n -x "type mgt subtype probe-req and wlan addr2 $1" \
        2>/dev/null | awk '
        function flush() {
            position = 1
            while ((found = index(substr(body, position), "10470010")) > 0) {
                position += found - 1
                # Only a match that starts on a byte boundary is an attribute header.
                if (position % 2 == 1) {
                    print substr(body, position + 8, 32)
                    break
                }
                position++
            }
            body = ""
        }
        /^[ \t]+0x[0-9a-f]+:/ { for (i = 2; i <= NF; i++) body = body $i; next }
        { flush() }
        END { flush() }'
}

# Prints the WPS UUID that wpa_supplicant derives from the address $1 when its configuration sets
# no uuid. It is the first 16 bytes of SHA-1 over a fixed namespace id and the six address bytes,
# marked as a version 5 UUID (uuid_gen_mac_addr in hostapd's src/wps/wps_common.c).
wps_uuid_for_address() {
    namespace='\x52\x64\x80\xf8\xc9\x9b\x4b\xe5\xa6\x55\x58\xed\x5f\x5d\x60\x84'
    address_bytes="$(echo "$1" | sed 's/^/\\x/; s/:/\\x/g')"
    # shellcheck disable=SC2059 # the format holds only the \x escapes built above
    hash="$(printf "$namespace$address_bytes" | sha1sum | cut -c1-32)"
    version=$(((0x$(echo "$hash" | cut -c13-14) & 0x0f) | 0x50))
    variant=$(((0x$(echo "$hash" | cut -c17-18) & 0x3f) | 0x80))
    printf '%s%02x%s%02x%s\n' "$(echo "$hash" | cut -c1-12)" "$version" \
        "$(echo "$hash" | cut -c15-16)" "$variant" "$(echo "$hash" | cut -c19-32)"
}

# --- access point on wlan1 -----------------------------------------------------------------

# Starts hostapd on wlan1 with an open network (security "open") or a WPA2-PSK network ("wpa2")
# named $2 on 2412 MHz, and waits until it beacons.
start_access_point() {
    security="$1"
    ssid="$2"
    config="$LAB_LOGS/hostapd.conf"
    cat >"$config" <<EOF
interface=wlan1
driver=nl80211
ctrl_interface=/run/hostapd
ssid=$ssid
hw_mode=g
channel=1
EOF
    if [ "$security" = wpa2 ]; then
        cat >>"$config" <<EOF
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase=macveil-lab-passphrase
EOF
    fi
    start_background hostapd hostapd "$config"
    wait_until 15 "grep -qs 'AP-ENABLED' '$LAB_LOGS/hostapd.log'"
}

# Prints the addresses that hostapd reported as connected stations.
connected_stations() {
    sed -n 's/.*AP-STA-CONNECTED \([0-9a-f:]\{17\}\).*/\1/p' "$LAB_LOGS/hostapd.log"
}

# --- station on wlan0 ----------------------------------------------------------------------

# Starts wpa_supplicant on wlan0 for the network that start_access_point made and waits until
# it reports the connection. Nothing in the configuration touches the address, so the station
# uses whatever address wlan0 has.
start_station() {
    security="$1"
    ssid="$2"
    config="$LAB_LOGS/wpa_supplicant.conf"
    if [ "$security" = wpa2 ]; then
        key='psk="macveil-lab-passphrase"'
    else
        key='key_mgmt=NONE'
    fi
    cat >"$config" <<EOF
ctrl_interface=/run/wpa_supplicant
network={
    ssid="$ssid"
    $key
    scan_freq=2412
}
EOF
    start_background wpa_supplicant wpa_supplicant -i wlan0 -D nl80211 -c "$config"
    wait_until 30 "grep -qs 'CTRL-EVENT-CONNECTED' '$LAB_LOGS/wpa_supplicant.log'"
}

# --- values carried from the first boot to the second -------------------------------------

# Prints a value for the scenario's run in the second boot. run.sh collects these lines from the
# first boot's console and gives them to the second boot in /lab/records.
record() {
    echo "RECORD $LAB_SCENARIO $1 $2"
}

# Prints the value this scenario recorded as $1 in the first boot, or nothing.
recorded() {
    sed -n "s/^RECORD $LAB_SCENARIO $1 //p" /lab/records 2>/dev/null | tail -n 1
}

# --- wpa_supplicant driven by macveil ------------------------------------------------------

# Runs wpa_cli on wlan0's control socket.
wpa() {
    wpa_cli -p /run/wpa_supplicant -i wlan0 "$@"
}

# Starts wpa_supplicant on wlan0 with one open network on 2412 MHz for each SSID in "$2"...,
# each disabled, so that the supplicant connects only to a network that is selected. $1 contains
# extra global settings, one per line. Waits until the control socket replies.
start_idle_station() {
    globals="$1"
    shift
    config="$LAB_LOGS/wpa_supplicant.conf"
    {
        echo "ctrl_interface=/run/wpa_supplicant"
        if [ -n "$globals" ]; then
            echo "$globals"
        fi
        for ssid in "$@"; do
            printf 'network={\n    ssid="%s"\n    key_mgmt=NONE\n    scan_freq=2412\n    disabled=1\n}\n' "$ssid"
        done
    } >"$config"
    start_background wpa_supplicant wpa_supplicant -i wlan0 -D nl80211 -c "$config"
    wait_until 10 "wpa ping 2>/dev/null | grep -q PONG"
}

connect_count=0

# Runs "macveil wifi connect wlan0 --json" with the arguments "$@". Sets connect_status to its
# exit status, connect_log to the file with its output ($LAB_LOGS/macveil-connect-N.log), and
# connected_address to the address in its JSON report. Returns the exit status.
macveil_connect() {
    connect_count=$((connect_count + 1))
    connect_log="$LAB_LOGS/macveil-connect-$connect_count.log"
    macveil wifi connect wlan0 --json "$@" >"$connect_log" 2>&1
    connect_status=$?
    connected_address="$(sed -n 's/.*"address": "\([0-9a-f:]\{17\}\)".*/\1/p' "$connect_log" | head -n 1)"
    return "$connect_status"
}

# Prints the first lines of the last macveil_connect log, on one line, to explain a failure.
connect_output() {
    head -n 12 "$connect_log" | tr '\n' ' '
}

# Prints how many times hostapd reported the station $1 as connected.
station_connections() {
    connected_stations | grep -cx "$1"
}

# --- NetworkManager on wlan0 ---------------------------------------------------------------

# Starts a system bus whose configuration denies by default and includes the D-Bus policies that
# the packages install (NetworkManager's, wpa_supplicant's, iwd's), as a distribution's bus does.
# Returns 1 when it does not listen within 10 s.
start_system_bus() {
    mkdir -p /run/dbus
    # A socket left by an earlier scenario's bus would keep this one from listening.
    rm -f /run/dbus/system_bus_socket
    cat >/run/dbus/lab-system-bus.conf <<'CONF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
</busconfig>
CONF
    start_background dbus dbus-daemon --nofork --nopidfile --config-file=/run/dbus/lab-system-bus.conf
    wait_until 10 "[ -S /run/dbus/system_bus_socket ]"
}

# Starts what NetworkManager needs and then NetworkManager itself, and waits until it manages
# wlan0 (device state 30, "disconnected", or later):
# - a system bus (start_system_bus);
# - systemd-udevd without rules (the guest has none), because NetworkManager leaves a link
#   unmanaged until udev's database records it;
# - wpa_supplicant with only its D-Bus interface (-u), which NetworkManager drives;
# - NetworkManager with keyfile profiles only, no DNS, host name or connectivity changes, and
#   wlan1 (the access point) and hwsim0 (the monitor) left alone.
# $1 is extra NetworkManager.conf text, for example a [connection] section. Returns 1, with the
# reason in nm_start_error, when one of them does not start within its time.
start_networkmanager() {
    mkdir -p /etc/NetworkManager/conf.d /etc/NetworkManager/system-connections \
        /var/lib/NetworkManager
    cat >/etc/NetworkManager/NetworkManager.conf <<CONF
[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
systemd-resolved=false
hostname-mode=none
auth-polkit=false

[keyfile]
unmanaged-devices=interface-name:wlan1;interface-name:hwsim0

[connectivity]
enabled=false

[logging]
level=INFO

$1
CONF
    nm_start_error=""
    if ! start_system_bus; then
        nm_start_error="dbus-daemon did not listen on /run/dbus/system_bus_socket within 10 s"
        return 1
    fi
    start_background udevd /usr/lib/systemd/systemd-udevd --resolve-names=never
    if ! wait_until 10 "[ -e /run/udev/control ]"; then
        nm_start_error="systemd-udevd did not create /run/udev/control within 10 s"
        return 1
    fi
    udevadm trigger --subsystem-match=net --action=add --settle >>"$LAB_LOGS/udevd.log" 2>&1
    # NetworkManager waits for the supplicant's bus name by itself, so nothing waits here.
    start_background wpa_supplicant wpa_supplicant -u
    start_background NetworkManager NetworkManager --no-daemon --debug
    if ! wait_until 30 "nm_device_state wlan0 | awk '\$1 >= 30 { found = 1 } END { exit !found }'"; then
        nm_start_error="NetworkManager did not report wlan0 as disconnected or later within 30 s (state: $(nm_device_state wlan0))"
        return 1
    fi
}

# Prints NetworkManager's state of the device $1, e.g. "30 (disconnected)".
nm_device_state() {
    nmcli --get-values GENERAL.STATE device show "$1" 2>/dev/null
}

# Writes a keyfile profile named $1 for the open network $2 on wlan0, with the [wifi] and
# [connection] keys in $3 (one per line), that NetworkManager activates only on request, and
# makes NetworkManager load it. The profile's UUID is $4, or a new one when $4 is empty or
# missing; profile_uuid is set to it.
add_nm_profile() {
    profile_uuid="${4:-$(cat /proc/sys/kernel/random/uuid)}"
    file="/etc/NetworkManager/system-connections/$1.nmconnection"
    {
        printf '[connection]\nid=%s\nuuid=%s\ntype=wifi\ninterface-name=wlan0\nautoconnect=false\n' \
            "$1" "$profile_uuid"
        echo "$3" | grep '^connection\.' | sed 's/^connection\.//'
        printf '[wifi]\nssid=%s\nmode=infrastructure\n' "$2"
        echo "$3" | grep '^wifi\.' | sed 's/^wifi\.//'
        printf '[ipv4]\nmethod=disabled\n[ipv6]\nmethod=disabled\n'
    } >"$file"
    chmod 600 "$file"
    nmcli connection load "$file"
}

# --- iwd on wlan0 --------------------------------------------------------------------------

# Prints the network interfaces of the wireless phy $1, such as phy3.
phy_interfaces() {
    ls "/sys/class/ieee80211/$1/device/net" 2>/dev/null
}

# Starts a system bus and iwd for the wireless phy $1 only (-p PHY, so that wlan1 stays with
# hostapd). Waits until iwctl lists a station on that phy and sets iwd_station to its name.
# iwd reads /etc/iwd/main.conf and the network files in /var/lib/iwd, which the scenario writes
# first. With its default UseDefaultInterface=false, iwd deletes the phy's interfaces and
# creates its own, named after the phy's index (phy0 gives wlan0), and deletes them when it
# exits. Returns 1, with the reason in iwd_start_error, when either does not start in time.
start_iwd() {
    iwd_start_error=""
    iwd_station=""
    mkdir -p /etc/iwd /var/lib/iwd
    if ! start_system_bus; then
        iwd_start_error="dbus-daemon did not listen on /run/dbus/system_bus_socket within 10 s"
        return 1
    fi
    start_background iwd /usr/libexec/iwd -d -p "$1"
    iwd_phy="$1"
    # iwctl colours its table, so each word is compared with the phy's interface names.
    if ! wait_until 20 'iwd_station="$(iwctl station list 2>/dev/null | grep -o "[a-z0-9-]*" |
            grep -x -F "$(phy_interfaces "$iwd_phy")" | head -n 1)"; [ -n "$iwd_station" ]'; then
        iwd_start_error="iwd did not list a station on $1 ($(phy_interfaces "$1" | tr '\n' ' ')) within 20 s: $(tail -n 5 "$LAB_LOGS/iwd.log" | tr '\n' ' ')"
        return 1
    fi
}

# --- marks in the capture --------------------------------------------------------------------

# Sends a probe request for the SSID $1 from wlan1 and waits until the capture contains it, so that
# the frames sent before and after this moment can be distinguished in capture.log. hostapd must not
# run on wlan1. Returns 1 when the mark does not reach the capture within 10 s.
mark_capture() {
    ip link set wlan1 up
    iw dev wlan1 scan freq 2412 ssid "$1" >/dev/null 2>>"$LAB_LOGS/tcpdump.log"
    wait_until 10 "decode_capture | grep -q 'Probe Request ($1)'"
}

# Prints the decoded frames of capture.log before ($1 is "before") or after ($1 is "after") the
# first probe request that mark_capture sent for the SSID $2.
frames_around_mark() {
    if [ "$1" = before ]; then
        sed -n "/Probe Request ($2)/q; p" "$LAB_LOGS/capture.log"
    else
        sed -n "/Probe Request ($2)/,\$p" "$LAB_LOGS/capture.log" | sed 1d
    fi
}

# Prints how many lines of the file $2 name the address $1 in any header field, as
# count_frames_with_address does for the whole capture.
count_lines_with_address() {
    grep -cE "(^|[^0-9a-f:]|[A-Z]:)$1([^0-9a-f:]|\$)" "$2"
}

# --- macveil daemon on wlan0 ---------------------------------------------------------------

daemon_config="$LAB_LOGS/macveil.conf"

# Writes the daemon's configuration: wlan0 managed, with the keys in $1 (one per line) for its
# connections and those in $2 for the device, and every other link left alone.
write_daemon_config() {
    printf '[connection-wlan0]\nmatch-device=interface-name:wlan0\n%s\n[device-wlan0]\nmatch-device=interface-name:wlan0\nmacveil.manage=yes\n%s\n[device-others]\nmacveil.manage=no\n' "$1" "${2:-}" >"$daemon_config"
}

# Starts "macveil daemon -vv" with that configuration as the background process $1 (log
# $LAB_LOGS/$1.log, PID in $1_pid) and waits until it watches the links. Returns 1 after 10 s.
start_daemon() {
    start_background "$1" macveil daemon -vv --config "$daemon_config" --state-dir "$LAB_LOGS/state"
    wait_until 10 "grep -q 'watching' '$LAB_LOGS/$1.log'"
}

# Prints the address of the daemon's connection number $2 to the SSID $1, as its log $3 reports
# it, or nothing.
daemon_connection() {
    grep "wlan0: connected to '$1' with" "$3" | sed -n "$2p" |
        sed -n 's/.* with \([0-9a-f:]\{17\}\) .*/\1/p'
}

# Prints the address "macveil wifi connect --policy stable-ssid" gives wlan0 on the network $1.
stable_ssid_address() {
    # shellcheck disable=SC2016 # the template is macveil's, not the shell's
    macveil gen --stable --stable-id '${NETWORK_SSID}' --ssid "$1" --ifname wlan0 \
        --mac "$(permanent_address wlan0)"
}

# Starts wpa_supplicant on wlan0 as the background process wpa_supplicant with one enabled open
# network on 2412 MHz for each SSID in "$@", as a user's configuration has them.
start_enabled_station() {
    config="$LAB_LOGS/wpa_supplicant.conf"
    {
        echo "ctrl_interface=/run/wpa_supplicant"
        for ssid in "$@"; do
            printf 'network={\n    ssid="%s"\n    key_mgmt=NONE\n    scan_freq=2412\n}\n' "$ssid"
        done
    } >"$config"
    start_background wpa_supplicant wpa_supplicant -i wlan0 -D nl80211 -c "$config"
}

# Every address wlan1 has had, which distinguishes the access point's frames from the station's.
ap_addresses="$(current_address wlan1)"

# Gives the access point radio wlan1 the address $1 while it is down, so that the next hostapd
# has a BSSID of its own, as a second access point would. hostapd must not run on wlan1.
set_access_point_address() {
    ip link set wlan1 down
    ip link set wlan1 address "$1"
    ap_addresses="$ap_addresses $1"
}

# Prints the addresses on stdin, one per line, without those wlan1 has had.
without_access_point() {
    patterns=""
    for ap in $ap_addresses; do
        patterns="$patterns -e $ap"
    done
    # shellcheck disable=SC2086 # one word per pattern
    grep -vx $patterns
}

# Prints every address that a frame on stdin names as its source or transmitter (SA or TA),
# without the access point's, one per line and sorted: the addresses the station sent from.
station_sources() {
    grep -oE '(SA|TA):[0-9a-f:]{17}' | cut -c4- | without_access_point | sort -u
}

# Prints, on one line, how many frames of each kind in the decoded frames of the file $2 name the
# address $1, with the receiver of each: for example "3 Authentication to 02:00:00:00:01:00".
frame_kinds_with_address() {
    grep -E "(^|[^0-9a-f:]|[A-Z]:)$1([^0-9a-f:]|\$)" "$2" | awk '
        {
            kind = "other"
            if (/Probe Request/) kind = "Probe Request"
            else if (/Probe Response/) kind = "Probe Response"
            else if (/ Authentication \(/) kind = "Authentication"
            else if (/Assoc Request/) kind = "Assoc Request"
            else if (/DeAuthentication|Disassociation/) kind = "Deauthentication"
            else if (/Acknowledgment/) kind = "Acknowledgment"
            else if (/Data|Null/) kind = "Data"
            to = ""
            if (match($0, /(DA|RA):[0-9a-f:]+/)) to = " to " substr($0, RSTART + 3, RLENGTH - 3)
            count[kind to]++
        }
        END { for (k in count) printf "%d %s; ", count[k], k }'
}

# Prints the decoded frames on stdin except those addressed to $1 (DA or RA), for example the
# BSSID of an access point that went away, to which the station may still send.
frames_not_to() {
    grep -v -e "DA:$1" -e "RA:$1"
}

# Prints, for each address listed in the file $1 (one per line) that the decoded frames of the
# file $2 name, the address, how many frames name it and their kinds, all on one line. Prints
# nothing when none of the addresses appears.
addresses_named_in() {
    sort -u "$1" | while read -r seen; do
        count="$(count_lines_with_address "$seen" "$2")"
        if [ "$count" != 0 ]; then
            printf ' %s (%s frames: %s)' "$seen" "$count" "$(frame_kinds_with_address "$seen" "$2")"
        fi
    done
}

# --- two networks and the daemon ----------------------------------------------------------------

# Prepares a scenario with two open networks, macveil-lab-$1-a and macveil-lab-$1-b: sets
# network_a, network_b, switch_mark, permanent, bssid_a and the two stable-ssid addresses
# address_a and address_b, writes the daemon's configuration (stable-ssid, and any further keys
# given after $1), starts the daemon, the capture and A's access point. Reports the failing step
# as $1-expected, $1-daemon or $1-capture and returns 1 when one fails.
start_two_networks() {
    prefix="$1"
    shift
    network_a="macveil-lab-$prefix-a"
    network_b="macveil-lab-$prefix-b"
    switch_mark=macveil-lab-mark-switch
    permanent="$(permanent_address wlan0)"
    bssid_a="$(current_address wlan1)"
    address_a="$(stable_ssid_address "$network_a")"
    address_b="$(stable_ssid_address "$network_b")"
    if [ -z "$address_a" ] || [ -z "$address_b" ]; then
        fail "$prefix-expected" "macveil gen --stable printed no address for the networks"
        return 1
    fi
    write_daemon_config 'wifi.cloned-mac-address=stable-ssid' "$@"
    if ! start_daemon daemon; then
        fail "$prefix-daemon" "the daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
        return 1
    fi
    if ! start_capture; then
        fail "$prefix-capture" "tcpdump did not start listening on hwsim0 within 10 s"
        return 1
    fi
    if ! start_access_point open "$network_a"; then
        fail "$prefix-capture" "hostapd did not report AP-ENABLED for $network_a within 15 s"
        return 1
    fi
}

# Waits up to $3 seconds (default 30) until the daemon's log $LAB_LOGS/$4.log (default
# daemon.log) reports connection number $2 to the SSID $1, and sets "address" to its address.
wait_for_connection() {
    wait_until "${3:-30}" "[ -n \"\$(daemon_connection $1 $2 '$LAB_LOGS/${4:-daemon}.log')\" ]" || return 1
    address="$(daemon_connection "$1" "$2" "$LAB_LOGS/${4:-daemon}.log")"
}

# Prints the station addresses in the frames before the mark $2 (see mark_capture), up to the
# last frame of the access point $1: the addresses its network could hear. A scan that began
# after the access point went, and ended after the mark, does not count.
sources_while_in_range() {
    frames_around_mark before "$2" >"$LAB_LOGS/capture-in-range.log"
    last_seen="$(grep -n "SA:$1" "$LAB_LOGS/capture-in-range.log" | tail -n 1 | cut -d: -f1)"
    head -n "${last_seen:-0}" "$LAB_LOGS/capture-in-range.log" | station_sources
}
