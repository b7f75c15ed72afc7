#!/bin/sh
# NetworkManager 1.42 manages wlan0 through wpa_supplicant's D-Bus interface, and the macveil
# daemon runs beside it with --nm-config. NetworkManager's key is in place before either starts,
# as on a machine where NetworkManager ran before (a copy of the run's key, so that it is the
# same in every boot).
# - wifi.cloned-mac-address=stable, with connection.stable-id ${CONNECTION}/${BOOT} and with
#   the default stable id (the profile's UUID): the association address that hostapd and the
#   capture see is the one `macveil nm predict` prints for the profile, from the guest's key,
#   machine id, boot id and interface, and it is the same again at the next activation.
# - The daemon leaves wlan0 to NetworkManager: while a profile is active the address stays the
#   one NetworkManager set, and the daemon logs no change of wlan0.
# - wifi.cloned-mac-address=random: neither the permanent address nor the stable ones, and a
#   new address at each activation.
# - NetworkManager's scans (wifi.scan-rand-mac-address, on by default) never carry the
#   permanent address, in the scans it starts by itself and in a rescan while disconnected.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-nm
permanent="$(permanent_address wlan0)"
ap="$(current_address wlan1)"

# NetworkManager's key, only ever read by the daemon.
mkdir -p /var/lib/NetworkManager
(umask 077 && cp /var/lib/macveil/secret_key /var/lib/NetworkManager/secret_key)

config="$LAB_LOGS/macveil.conf"
printf '[device-wlan0]\nmatch-device=interface-name:wlan0\nmacveil.manage=yes\n[device-others]\nmacveil.manage=no\n' >"$config"
start_background daemon macveil daemon -vv --nm-config --config "$config" --state-dir "$LAB_LOGS/state"
if ! wait_until 10 "grep -q 'watching' '$LAB_LOGS/daemon.log'"; then
    fail nm-daemon-started "the daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
    exit
fi

if ! start_capture; then
    fail nm-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail nm-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if start_networkmanager ""; then
    pass nm-manages-wlan0
else
    fail nm-manages-wlan0 "$nm_start_error"
    exit
fi

add_nm_profile nm-per-boot "$ssid" 'wifi.cloned-mac-address=stable
connection.stable-id=${CONNECTION}/${BOOT}' >>"$LAB_LOGS/nmcli.log" 2>&1
add_nm_profile nm-stable "$ssid" 'wifi.cloned-mac-address=stable' >>"$LAB_LOGS/nmcli.log" 2>&1
add_nm_profile nm-random "$ssid" 'wifi.cloned-mac-address=random' >>"$LAB_LOGS/nmcli.log" 2>&1

# A rescan while disconnected, which NetworkManager makes with its random scan address.
nmcli device wifi rescan ifname wlan0 >>"$LAB_LOGS/nmcli.log" 2>&1
sleep 3

# Lines in which the daemon reports a change of wlan0's address or takes it down.
daemon_changes() {
    grep -cE 'wlan0: .*(address .* set \(was|cycling it|taking it down)' "$LAB_LOGS/daemon.log"
}

activation_count=0

# Activates the profile $1, holds the connection for 4 s while recording wlan0's address every
# 0.2 s, and deactivates it. Sets activated_address to the address hostapd reported for the new
# connection, held_addresses to the distinct addresses recorded while it was active, and
# daemon_changed to the daemon's change reports for wlan0 in that time. Returns 1 when the
# activation failed or hostapd reported no new station.
activate() {
    activation_count=$((activation_count + 1))
    activated_address=""
    before="$(connected_stations | wc -l)"
    changes_before="$(daemon_changes)"
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
    for tick in $(seq 20); do
        current_address wlan0
        sleep 0.2
    done >"$held"
    held_addresses="$(sort -u "$held" | tr '\n' ' ')"
    daemon_changed=$(($(daemon_changes) - changes_before))
    nmcli --wait 30 connection down "$1" >>"$LAB_LOGS/nmcli.log" 2>&1
    wait_until 10 "nm_device_state wlan0 | grep -q '^30 '"
}

# Predicts the address of the profile $1 on wlan0 with `macveil nm predict` and sets predicted.
predict() {
    macveil nm predict "$1" --ifname wlan0 >"$LAB_LOGS/predict-$1.log" 2>&1
    predicted="$(head -n 1 "$LAB_LOGS/predict-$1.log" | cut -f 1)"
}

# Checks the two activations of the stable profile $1: the prediction, the same address both
# times, and a daemon that left the connection alone.
check_stable() {
    profile="$1"
    predict "$profile"
    addresses=""
    for round in 1 2; do
        if ! activate "$profile"; then
            fail "$profile-predicted" "$activation_error"
            return
        fi
        addresses="$addresses $activated_address"
        if [ "$held_addresses" != "$activated_address " ]; then
            fail "$profile-address-held-$round" "wlan0 had [$held_addresses] while connected with $activated_address"
        else
            pass "$profile-address-held-$round"
        fi
        if [ "$daemon_changed" != 0 ]; then
            fail "$profile-daemon-quiet-$round" "the daemon reported $daemon_changed changes of wlan0 while NetworkManager's connection was up: $(grep wlan0 "$LAB_LOGS/daemon.log" | tail -n 3 | tr '\n' ' ')"
        else
            pass "$profile-daemon-quiet-$round"
        fi
    done
    set -- $addresses
    if [ -z "$predicted" ] || ! echo "$predicted" | grep -q '^[0-9a-f:]\{17\}$'; then
        fail "$profile-predicted" "macveil nm predict printed no address: $(head -n 3 "$LAB_LOGS/predict-$profile.log" | tr '\n' ' ')"
    elif [ "$1" != "$predicted" ]; then
        fail "$profile-predicted" "NetworkManager associated with $1, macveil nm predict printed $predicted"
    else
        pass "$profile-predicted"
    fi
    if [ "$1" != "$2" ] || [ "$1" = "$permanent" ]; then
        fail "$profile-same-on-reactivation" "the two activations used $1 and $2 (permanent $permanent)"
    else
        pass "$profile-same-on-reactivation"
    fi
    eval "address_$(echo "$profile" | tr - _)=\$1"
}

check_stable nm-per-boot
check_stable nm-stable
if [ -n "$address_nm_per_boot" ] && [ "$address_nm_per_boot" = "$address_nm_stable" ]; then
    fail nm-stable-ids-differ "both stable ids gave $address_nm_stable"
fi

random_addresses=""
for round in 1 2; do
    if ! activate nm-random; then
        fail nm-random-new-each-activation "$activation_error"
        break
    fi
    random_addresses="$random_addresses $activated_address"
    if [ "$daemon_changed" != 0 ]; then
        fail "nm-random-daemon-quiet-$round" "the daemon reported $daemon_changed changes of wlan0 while NetworkManager's connection was up"
    else
        pass "nm-random-daemon-quiet-$round"
    fi
done
set -- $random_addresses
if [ "$#" = 2 ]; then
    earlier=" $permanent $address_nm_per_boot $address_nm_stable "
    case "$earlier" in
        *" $1 "*) fail nm-random-new-each-activation "the first random address $1 is the permanent or a stable address [$earlier]" ;;
        *)
            if [ "$2" = "$1" ] || echo "$earlier" | grep -q " $2 "; then
                fail nm-random-new-each-activation "the second random address $2 repeats one of [$earlier$1]"
            else
                pass nm-random-new-each-activation
            fi
            ;;
    esac
fi

stop_background NetworkManager
if ! stop_capture; then
    fail nm-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

# The association requests, in order, are those of the six activations.
captured_sources 'Assoc Request' >"$LAB_LOGS/association-sources"
expected="$(connected_stations | tr '\n' ' ')"
if [ -z "$expected" ]; then
    fail nm-capture-association "hostapd reported no station, so nothing was checked"
elif [ "$(tr '\n' ' ' <"$LAB_LOGS/association-sources")" = "$expected" ]; then
    pass nm-capture-association
else
    fail nm-capture-association "the association requests came from [$(tr '\n' ' ' <"$LAB_LOGS/association-sources")], hostapd reported [$expected]"
fi

# The access point sends no probe requests except the end marker, so every other probe request
# is a scan of the station.
grep 'Probe Request' "$LAB_LOGS/capture.log" | grep -v "$capture_marker" |
    sed -n 's/.* SA:\([0-9a-f:]\{17\}\).*/\1/p' | grep -vx "$ap" >"$LAB_LOGS/scan-sources"
scan_frames="$(wc -l <"$LAB_LOGS/scan-sources")"
if [ "$scan_frames" = 0 ]; then
    fail nm-scan-no-permanent-address "the capture holds no probe request from the station, so nothing was checked"
elif grep -qx "$permanent" "$LAB_LOGS/scan-sources"; then
    fail nm-scan-no-permanent-address "$(grep -cx "$permanent" "$LAB_LOGS/scan-sources") of $scan_frames probe requests carry the permanent address $permanent"
else
    pass nm-scan-no-permanent-address
fi
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass nm-no-frame-with-permanent-address
else
    fail nm-no-frame-with-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi
