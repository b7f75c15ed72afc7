#!/bin/sh
# lab-boots: 2
# NetworkManager 1.42 manages wlan0 through wpa_supplicant's D-Bus interface, and the macveil
# daemon runs beside it with --nm-config. run.sh puts NetworkManager's key in place, as on a
# machine where NetworkManager ran before, and it differs from macveil's key. That key, the
# machine id and the profiles' UUIDs are the same in both boots, and only the boot id changes.
# - wifi.cloned-mac-address=stable with connection.stable-id ${CONNECTION}/${BOOT} or
#   ${CONNECTION}, and a profile that takes NetworkManager.conf's default (stable with
#   ${DEVICE}/${BOOT}): the association address that hostapd and the capture see is the one
#   `macveil nm predict` prints for the profile, from the guest's key, machine id, boot id and
#   interface. In the second boot ${CONNECTION} gives the same address as in the first and
#   ${CONNECTION}/${BOOT} a different one. The first boot also shows that ${CONNECTION}/${BOOT}
#   gives the same address again at the next activation.
# - The daemon agrees with NetworkManager: the address it set on wlan0 before NetworkManager
#   started, from the same default policy and NetworkManager's key, is the one NetworkManager
#   gives the profile that takes the default.
# - The daemon leaves wlan0 to NetworkManager: while a profile is active the address stays the
#   one NetworkManager set, and the daemon logs no change of wlan0.
# - wifi.cloned-mac-address=random (first boot): neither the permanent address nor the stable
#   ones, and a new address at each activation.
# - NetworkManager's scans while disconnected (wifi.scan-rand-mac-address, on by default) use
#   the random addresses it logs for scanning, and no probe request carries the permanent
#   address.
# NetworkManager 1.42 has no stable-ssid (added in 1.46): its keyfile reader drops the value, so
# such a profile takes NetworkManager.conf's default, else preserve. No profile here uses it.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-nm
permanent="$(permanent_address wlan0)"
ap="$(current_address wlan1)"

# NetworkManager's default policy, which both NetworkManager and the daemon (--nm-config) read.
# Its stable id names no profile, so the daemon can derive the same address for wlan0.
mkdir -p /etc/NetworkManager/conf.d
# shellcheck disable=SC2016 # NetworkManager expands ${DEVICE} and ${BOOT}
printf '[connection]\nwifi.cloned-mac-address=stable\nconnection.stable-id=${DEVICE}/${BOOT}\n' \
    >/etc/NetworkManager/conf.d/50-lab-policy.conf

# The daemon manages only wlan0. It starts first, as at boot, and sets wlan0's address from
# that policy and NetworkManager's key before NetworkManager runs.
config="$LAB_LOGS/macveil.conf"
printf '[device-wlan0]\nmatch-device=interface-name:wlan0\nmacveil.manage=yes\n[device-others]\nmacveil.manage=no\n' >"$config"
start_background daemon macveil daemon -vv --nm-config --config "$config" --state-dir "$LAB_LOGS/state"
if ! wait_until 10 "grep -q 'watching' '$LAB_LOGS/daemon.log'"; then
    fail nm-daemon-started "the daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
    exit
fi
daemon_address="$(current_address wlan0)"

if ! start_capture; then
    fail nm-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail nm-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if start_networkmanager ""; then
    pass "nm-manages-wlan0-boot-$LAB_BOOT"
else
    fail "nm-manages-wlan0-boot-$LAB_BOOT" "$nm_start_error"
    exit
fi

# The access point's channel, so that the supplicant's scan before each association covers only
# 2412 MHz instead of every channel, which takes several seconds under software emulation.
channel='wifi.band=bg
wifi.channel=1'
add_nm_profile nm-per-boot "$ssid" "wifi.cloned-mac-address=stable
connection.stable-id=\${CONNECTION}/\${BOOT}
$channel" "$(recorded uuid-nm-per-boot)" >>"$LAB_LOGS/nmcli.log" 2>&1
record uuid-nm-per-boot "$profile_uuid"
add_nm_profile nm-stable "$ssid" "wifi.cloned-mac-address=stable
connection.stable-id=\${CONNECTION}
$channel" "$(recorded uuid-nm-stable)" >>"$LAB_LOGS/nmcli.log" 2>&1
record uuid-nm-stable "$profile_uuid"
add_nm_profile nm-default "$ssid" "$channel" "$(recorded uuid-nm-default)" >>"$LAB_LOGS/nmcli.log" 2>&1
record uuid-nm-default "$profile_uuid"
add_nm_profile nm-random "$ssid" "wifi.cloned-mac-address=random
$channel" >>"$LAB_LOGS/nmcli.log" 2>&1

# Counts the daemon's reports about wlan0: the events it saw, and the actions other than none it
# chose or carried out (an address set, the link cycled or taken down).
daemon_events() {
    grep -c 'wlan0: .*, action ' "$LAB_LOGS/daemon.log"
}
daemon_changes() {
    grep -E 'wlan0: (.*, action |address changed from|.* address .* set \(was|cycling it|up with the address)' \
        "$LAB_LOGS/daemon.log" | grep -cv ', action None$'
}

activation_count=0

# Activates the profile $1, keeps the connection up for 1 s while recording wlan0's address every
# 0.2 s, and deactivates it. Sets activated_address to the address hostapd reported for the new
# connection, held_addresses to the distinct addresses recorded while it was active, and
# daemon_changed and daemon_saw to the daemon's change reports and its events for wlan0 in that
# time. Returns 1 when the activation failed or hostapd reported no new station.
activate() {
    activation_count=$((activation_count + 1))
    activated_address=""
    before="$(connected_stations | wc -l)"
    changes_before="$(daemon_changes)"
    events_before="$(daemon_events)"
    if ! nmcli --wait 30 connection up "$1" >>"$LAB_LOGS/nmcli.log" 2>&1; then
        activation_error="nmcli connection up $1 failed: $(tail -n 2 "$LAB_LOGS/nmcli.log" | tr '\n' ' ')"
        return 1
    fi
    if ! wait_until 5 "[ \$(connected_stations | wc -l) -gt $before ]"; then
        activation_error="hostapd reported no station for activation $activation_count ($1)"
        return 1
    fi
    activated_address="$(connected_stations | tail -n 1)"
    held="$LAB_LOGS/held-$activation_count"
    for _ in 1 2 3 4 5; do
        current_address wlan0
        sleep 0.2
    done >"$held"
    held_addresses="$(sort -u "$held" | tr '\n' ' ')"
    daemon_changed=$(($(daemon_changes) - changes_before))
    daemon_saw=$(($(daemon_events) - events_before))
    nmcli --wait 30 connection down "$1" >>"$LAB_LOGS/nmcli.log" 2>&1
    wait_until 10 "nm_device_state wlan0 | grep -q '^30 '"
}

# Predicts the address of the profile $1 on wlan0 with `macveil nm predict` and sets predicted
# to the first field of its first line, or to nothing when that is not an address.
predict() {
    macveil nm predict "$1" --ifname wlan0 >"$LAB_LOGS/predict-$1.log" 2>&1
    predicted="$(head -n 1 "$LAB_LOGS/predict-$1.log" | cut -f 1 | grep -x '[0-9a-f:]\{17\}')"
}

# Problems seen while connections were up, over every activation.
held_problems=""
daemon_problems=""

# Activates the profile $1 once more (see activate) and notes whether the address stayed and the
# daemon stayed out. Sets connection_address, or leaves it empty and fails the check $2.
connect_once() {
    connection_address=""
    if ! activate "$1"; then
        fail "$2" "$activation_error"
        return 1
    fi
    connection_address="$activated_address"
    if [ "$held_addresses" != "$activated_address " ]; then
        held_problems="$held_problems activation $activation_count ($1) associated with $activated_address, wlan0 then had [$held_addresses];"
    fi
    if [ "$daemon_saw" = 0 ]; then
        daemon_problems="$daemon_problems activation $activation_count ($1): the daemon logged no event of wlan0, so it may not have been watching;"
    elif [ "$daemon_changed" != 0 ]; then
        daemon_problems="$daemon_problems activation $activation_count ($1): $daemon_changed changes;"
    fi
}

# Checks that the stable profile $1 associates with the address `macveil nm predict` printed
# before the activation, and sets the variable named $2 to that address.
check_predicted() {
    check="$1-predicted-boot-$LAB_BOOT"
    predict "$1"
    if ! connect_once "$1" "$check"; then
        return
    fi
    eval "$2=\$connection_address"
    if [ -z "$predicted" ]; then
        fail "$check" "macveil nm predict printed no address: $(head -n 3 "$LAB_LOGS/predict-$1.log" | tr '\n' ' ')"
    elif [ "$connection_address" != "$predicted" ]; then
        fail "$check" "NetworkManager associated with $connection_address, macveil nm predict printed $predicted"
    elif [ "$connection_address" = "$permanent" ]; then
        fail "$check" "NetworkManager and macveil nm predict both gave the permanent address $permanent"
    else
        pass "$check"
    fi
}

per_boot=""
stable=""
default=""
check_predicted nm-per-boot per_boot
check_predicted nm-stable stable
check_predicted nm-default default
distinct="$(printf '%s\n' "$per_boot" "$stable" "$default" | grep . | sort -u | wc -l)"
if [ "$distinct" != 3 ]; then
    fail "nm-stable-ids-differ-boot-$LAB_BOOT" "the three stable ids gave [$per_boot] [$stable] [$default]"
fi

# The profile without address settings takes NetworkManager's default policy, from which the
# daemon derived wlan0's address before NetworkManager started.
if [ -z "$default" ]; then
    fail "nm-daemon-agrees-boot-$LAB_BOOT" "nm-default did not connect, so there is nothing to compare"
elif [ "$daemon_address" = "$permanent" ]; then
    fail "nm-daemon-agrees-boot-$LAB_BOOT" "the daemon left wlan0 on its permanent address $permanent: $(grep wlan0 "$LAB_LOGS/daemon.log" | head -n 3 | tr '\n' ' ')"
elif [ "$daemon_address" != "$default" ]; then
    fail "nm-daemon-agrees-boot-$LAB_BOOT" "the daemon set $daemon_address, NetworkManager associated with $default for the same policy"
else
    pass "nm-daemon-agrees-boot-$LAB_BOOT"
fi

if [ "$LAB_BOOT" = 2 ]; then
    first_stable="$(recorded stable)"
    first_per_boot="$(recorded per-boot)"
    if [ -z "$first_stable" ] || [ -z "$stable" ]; then
        fail nm-stable-same-after-reboot "no address to compare: first boot [$first_stable], second boot [$stable]"
    elif [ "$stable" != "$first_stable" ]; then
        fail nm-stable-same-after-reboot "nm-stable used $stable, in the first boot $first_stable"
    else
        pass nm-stable-same-after-reboot
    fi
    if [ -z "$first_per_boot" ] || [ -z "$per_boot" ]; then
        fail nm-per-boot-changes-after-reboot "no address to compare: first boot [$first_per_boot], second boot [$per_boot]"
    elif [ "$per_boot" = "$first_per_boot" ]; then
        fail nm-per-boot-changes-after-reboot "nm-per-boot used $per_boot in both boots"
    else
        pass nm-per-boot-changes-after-reboot
    fi
else
    record stable "$stable"
    record per-boot "$per_boot"
fi

# The first boot also activates nm-per-boot again and the random profile twice. No random
# address may be the permanent address or one used before.
if [ "$LAB_BOOT" = 1 ]; then
    if [ -n "$per_boot" ] && connect_once nm-per-boot nm-per-boot-same-on-reactivation; then
        if [ "$connection_address" = "$per_boot" ]; then
            pass nm-per-boot-same-on-reactivation
        else
            fail nm-per-boot-same-on-reactivation "the second activation used $connection_address, the first $per_boot"
        fi
    fi

    used=" $permanent $per_boot $stable $default "
    for round in 1 2; do
        if ! connect_once nm-random nm-random-new-each-activation; then
            break
        fi
        case "$used" in
            *" $connection_address "*)
                fail nm-random-new-each-activation "activation $round of nm-random used $connection_address, which is the permanent address or was used before [$used]"
                break
                ;;
        esac
        used="$used$connection_address "
        if [ "$round" = 2 ]; then
            pass nm-random-new-each-activation
        fi
    done
fi

if [ "$activation_count" = 0 ]; then
    :
elif [ -n "$held_problems" ]; then
    fail "nm-address-held-boot-$LAB_BOOT" "$held_problems"
else
    pass "nm-address-held-boot-$LAB_BOOT"
fi
if [ "$activation_count" = 0 ]; then
    :
elif [ -n "$daemon_problems" ]; then
    fail "nm-daemon-leaves-wlan0-boot-$LAB_BOOT" "$daemon_problems $(grep 'wlan0' "$LAB_LOGS/daemon.log" | grep -v ', action None$' | tail -n 3 | tr '\n' ' ')"
else
    pass "nm-daemon-leaves-wlan0-boot-$LAB_BOOT"
fi

stop_background NetworkManager
if ! stop_capture; then
    fail nm-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

# The association requests are those of the activations, in the same order.
captured_sources 'Assoc Request' >"$LAB_LOGS/association-sources"
expected="$(connected_stations | tr '\n' ' ')"
if [ -z "$expected" ]; then
    fail "nm-capture-association-boot-$LAB_BOOT" "hostapd reported no station, so nothing was checked"
elif [ "$(tr '\n' ' ' <"$LAB_LOGS/association-sources")" = "$expected" ]; then
    pass "nm-capture-association-boot-$LAB_BOOT"
else
    fail "nm-capture-association-boot-$LAB_BOOT" "the association requests came from [$(tr '\n' ' ' <"$LAB_LOGS/association-sources")], hostapd reported [$expected]"
fi

# The access point sends no probe requests except the end marker, so every other probe request
# is a scan of the station.
grep 'Probe Request' "$LAB_LOGS/capture.log" | grep -v "$capture_marker" |
    sed -n 's/.* SA:\([0-9a-f:]\{17\}\).*/\1/p' | grep -vx "$ap" >"$LAB_LOGS/scan-sources"
scan_frames="$(wc -l <"$LAB_LOGS/scan-sources")"
# NetworkManager logs each address it sets for scanning: "set MAC address to X (scanning)".
sed -n 's/.*set MAC address to \([0-9A-F:]\{17\}\) (scanning).*/\1/p' "$LAB_LOGS/NetworkManager.log" |
    tr 'A-F' 'a-f' | sort -u >"$LAB_LOGS/scanning-addresses"
scanning_frames="$(grep -cxf "$LAB_LOGS/scanning-addresses" "$LAB_LOGS/scan-sources")"
if [ "$scan_frames" = 0 ]; then
    fail "nm-scan-no-permanent-address-boot-$LAB_BOOT" "the capture holds no probe request from the station, so nothing was checked"
elif [ "$scanning_frames" = 0 ]; then
    fail "nm-scan-no-permanent-address-boot-$LAB_BOOT" "no probe request came from an address NetworkManager set for scanning [$(tr '\n' ' ' <"$LAB_LOGS/scanning-addresses")], so its scans were not checked"
elif grep -qx "$permanent" "$LAB_LOGS/scan-sources"; then
    fail "nm-scan-no-permanent-address-boot-$LAB_BOOT" "$(grep -cx "$permanent" "$LAB_LOGS/scan-sources") of $scan_frames probe requests carry the permanent address $permanent"
else
    pass "nm-scan-no-permanent-address-boot-$LAB_BOOT"
fi
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass "nm-no-frame-with-permanent-address-boot-$LAB_BOOT"
else
    fail "nm-no-frame-with-permanent-address-boot-$LAB_BOOT" "$leaks captured frames carry the permanent address $permanent"
fi
