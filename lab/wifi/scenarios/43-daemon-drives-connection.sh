#!/bin/sh
# The daemon drives the connections of a link whose address depends on the network. It runs
# with wifi.cloned-mac-address=stable-ssid before a wpa_supplicant that has two enabled
# networks, A and B, of which only B is in range. The daemon stops the supplicant, chooses B,
# and connects with B's stable-ssid address, which must equal 'macveil gen --stable' for B. The
# address survives a restart of the access point. After a reload with the random policy, and
# again after the supplicant restarts, each activation gets a new random address. No frame may
# carry the permanent address or A's address.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

network_a=macveil-lab-drive-a
network_b=macveil-lab-drive-b
permanent="$(permanent_address wlan0)"

# The addresses macveil wifi connect --policy stable-ssid would give each network.
stable_ssid() {
    # shellcheck disable=SC2016 # the template is macveil's, not the shell's
    macveil gen --stable --stable-id '${NETWORK_SSID}' --ssid "$1" --ifname wlan0 --mac "$permanent"
}
address_a="$(stable_ssid "$network_a")"
address_b="$(stable_ssid "$network_b")"
# Without a network, ${NETWORK_SSID} falls back to the connection, which gives the card one
# address on every network.
# shellcheck disable=SC2016 # the template is macveil's, not the shell's
fallback="$(macveil gen --stable --stable-id '${NETWORK_SSID}' --ifname wlan0 --mac "$permanent")"
if [ -z "$address_a" ] || [ -z "$address_b" ] || [ -z "$fallback" ]; then
    fail daemon-drive-expected "macveil gen --stable printed no address for the networks or the fallback"
    exit
fi

# start_access_point sets "config", so macveil's file has a name of its own.
macveil_config="$LAB_LOGS/macveil.conf"
write_config() {
    printf '[connection-wlan0]\nmatch-device=interface-name:wlan0\nwifi.cloned-mac-address=%s\n[device-wlan0]\nmatch-device=interface-name:wlan0\nmacveil.manage=yes\n[device-others]\nmacveil.manage=no\n' "$1" >"$macveil_config"
}
write_config stable-ssid
start_background daemon macveil daemon -vv --config "$macveil_config" --state-dir "$LAB_LOGS/state"
if ! wait_until 10 "grep -q 'watching' '$LAB_LOGS/daemon.log'"; then
    fail daemon-drive-started "the daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
    exit
fi

# Before any network is chosen, the link rules give wlan0 a fresh random address, not one
# that a network could see again.
rule_address="$(current_address wlan0)"
case "$rule_address" in
"$permanent" | "$address_a" | "$address_b" | "$fallback")
    fail daemon-drive-rule-address "wlan0 has $rule_address before the supplicant starts, expected a fresh random address"
    ;;
*) pass daemon-drive-rule-address ;;
esac

if ! start_capture; then
    fail daemon-drive-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$network_b"; then
    fail daemon-drive-capture "hostapd did not report AP-ENABLED for $network_b within 15 s"
    exit
fi

# Starts wpa_supplicant on wlan0 with both networks enabled, as a user's configuration has them.
start_supplicant() {
    supplicant_config="$LAB_LOGS/wpa_supplicant.conf"
    {
        echo "ctrl_interface=/run/wpa_supplicant"
        for ssid in "$network_a" "$network_b"; do
            printf 'network={\n    ssid="%s"\n    key_mgmt=NONE\n    scan_freq=2412\n}\n' "$ssid"
        done
    } >"$supplicant_config"
    start_background wpa_supplicant wpa_supplicant -i wlan0 -D nl80211 -c "$supplicant_config"
}

# Counts the daemon's reports of a connection it made.
connections() {
    grep -c "wlan0: connected to '$network_b' with" "$LAB_LOGS/daemon.log"
}

# Waits until the daemon reports connection number $1, and sets "address" to its address.
# Fails the check $2 and returns 1 after 40 s.
wait_for_connection() {
    if ! wait_until 40 "[ \$(connections) -ge $1 ]"; then
        fail "$2" "the daemon reported no connection number $1 to $network_b within 40 s: $(grep 'wlan0' "$LAB_LOGS/daemon.log" | tail -n 4 | tr '\n' ' ')"
        return 1
    fi
    address="$(grep "wlan0: connected to '$network_b' with" "$LAB_LOGS/daemon.log" | sed -n "$1p" |
        sed -n 's/.* with \([0-9a-f:]\{17\}\) .*/\1/p')"
}

start_supplicant
wait_for_connection 1 daemon-drive-stable-ssid || exit
if [ "$address" != "$address_b" ]; then
    fail daemon-drive-stable-ssid "the daemon connected to $network_b with $address, expected its stable-ssid address $address_b"
elif ! wait_until 5 "[ \$(station_connections $address_b) -ge 1 ]"; then
    fail daemon-drive-stable-ssid "hostapd did not report $address_b as connected: $(connected_stations | tr '\n' ' ')"
elif [ "$(current_address wlan0)" != "$address_b" ]; then
    fail daemon-drive-stable-ssid "wlan0 has $(current_address wlan0), expected $address_b"
else
    pass daemon-drive-stable-ssid
fi

# The access point restarts. The supplicant finds the network again by itself, and the
# connection keeps the network's address.
stop_background hostapd
if ! start_access_point open "$network_b"; then
    fail daemon-drive-ap-restart "hostapd did not report AP-ENABLED for $network_b again within 15 s"
    exit
fi
if ! wait_until 20 "[ \$(station_connections $address_b) -ge 1 ]"; then
    fail daemon-drive-ap-restart "the restarted access point saw no connection from $address_b within 20 s: [$(connected_stations | tr '\n' ' ')]"
elif [ "$(current_address wlan0)" != "$address_b" ]; then
    fail daemon-drive-ap-restart "wlan0 has $(current_address wlan0) after the restart, expected $address_b"
else
    pass daemon-drive-ap-restart
fi

# A reload with the random policy starts a new activation, and so does a new supplicant.
write_config random
# shellcheck disable=SC2154 # start_background sets daemon_pid
kill -HUP "$daemon_pid"
wait_for_connection 2 daemon-drive-random-reload || exit
random_1="$address"
stop_background wpa_supplicant
# The supplicant takes wlan0 down as it exits, and with no driver the link rules give the link
# its next random address. The new supplicant may try the network with it before the daemon
# reaches its control socket.
wait_until 5 "[ \$(current_address wlan0) != $random_1 ]"
restart_address="$(current_address wlan0)"
start_supplicant
wait_for_connection 3 daemon-drive-random-restart || exit
random_2="$address"
case "$random_1" in
"$permanent" | "$address_a" | "$address_b")
    fail daemon-drive-random-reload "the reload with the random policy gave $random_1, which is not a new address"
    ;;
*) pass daemon-drive-random-reload ;;
esac
if [ "$random_2" = "$random_1" ] || [ "$random_2" = "$address_b" ] || [ "$random_2" = "$permanent" ]; then
    fail daemon-drive-random-restart "the supplicant's restart gave $random_2, after $random_1 (stable-ssid $address_b)"
else
    pass daemon-drive-random-restart
fi

if ! stop_capture; then
    fail daemon-drive-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

# Authentication and association frames of the station go out only from addresses chosen for
# B, or fresh from the link rules: the rule's address before each supplicant start, B's
# stable-ssid address, and the two random activations. The access point's own frames are left
# out.
ap="$(current_address wlan1)"
captured_sources 'Authentication\|Assoc Request' | grep -vx "$ap" | sort -u >"$LAB_LOGS/connection-sources"
expected="$rule_address $address_b $random_1 $restart_address $random_2"
unexpected="$(grep -vx -e "$rule_address" -e "$address_b" -e "$random_1" -e "$restart_address" -e "$random_2" "$LAB_LOGS/connection-sources" | tr '\n' ' ')"
if [ ! -s "$LAB_LOGS/connection-sources" ]; then
    fail daemon-drive-connection-frames "the capture holds no authentication or association frame from the station"
elif [ -n "$unexpected" ]; then
    fail daemon-drive-connection-frames "authentication or association frames came from [$unexpected], expected only [$expected]"
else
    pass daemon-drive-connection-frames
fi

leaks="$(count_frames_with_address "$permanent")"
other="$(count_frames_with_address "$address_a")"
if [ "$leaks" != 0 ]; then
    fail daemon-drive-no-linking-address "$leaks captured frames carry the permanent address $permanent"
elif [ "$other" != 0 ]; then
    fail daemon-drive-no-linking-address "$other captured frames carry $address_a, the address of the other network"
else
    pass daemon-drive-no-linking-address
fi
