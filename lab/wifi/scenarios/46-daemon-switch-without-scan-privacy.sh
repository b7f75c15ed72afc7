#!/bin/sh
# The chosen network goes away and another comes into range while scans carry the interface
# address (wifi.scan-rand-mac-address=no). The daemon runs with stable-ssid before a
# wpa_supplicant with two enabled networks, A and B, and connects to A with A's address. Then
# A's access point goes away and B's, with a BSSID of its own, comes up. The daemon must connect
# to B with B's address, and B must see no frame, probe requests included, from an address that
# the station used while A was in range, up to A's last frame (frames addressed to A's BSSID
# aside).

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

start_two_networks switch 'wifi.scan-rand-mac-address=no' || exit

start_enabled_station "$network_a" "$network_b"
if ! wait_for_connection "$network_a" 1 30; then
    fail switch-connects-a "the daemon reported no connection to $network_a within 30 s: $(grep wlan0 "$LAB_LOGS/daemon.log" | tail -n 4 | tr '\n' ' ')"
    exit
elif [ "$address" != "$address_a" ]; then
    fail switch-connects-a "the daemon connected to $network_a with $address, expected $address_a"
    exit
fi

stop_background hostapd
set_access_point_address 02:00:00:00:01:0b
if ! mark_capture "$switch_mark"; then
    fail switch-capture "the switch mark did not reach the capture within 10 s"
    exit
fi
if ! start_access_point open "$network_b"; then
    fail switch-capture "hostapd did not report AP-ENABLED for $network_b within 15 s"
    exit
fi
# The supplicant tries to regain A for 15 s before the daemon chooses again.
if ! wait_for_connection "$network_b" 1 35; then
    fail switch-connects-b "the daemon reported no connection to $network_b within 35 s of its access point's start: $(grep wlan0 "$LAB_LOGS/daemon.log" | tail -n 4 | tr '\n' ' ')"
elif [ "$address" != "$address_b" ]; then
    fail switch-connects-b "the daemon connected to $network_b with $address, expected $address_b"
else
    pass switch-connects-b
fi

if ! stop_capture; then
    fail switch-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

sources_while_in_range "$bssid_a" "$switch_mark" >"$LAB_LOGS/sources-a"
echo "$address_a" >>"$LAB_LOGS/sources-a"
# Frames addressed to A's BSSID are the supplicant's attempts to regain A: they are not sent to
# B, although B can hear them.
frames_around_mark after "$switch_mark" | frames_not_to "$bssid_a" >"$LAB_LOGS/capture-b.log"
# Probe requests, and the probe responses to them, apart from the other frames.
grep -e 'Probe Request' -e 'Probe Response' "$LAB_LOGS/capture-b.log" >"$LAB_LOGS/capture-b-probes.log"
grep -v -e 'Probe Request' -e 'Probe Response' "$LAB_LOGS/capture-b.log" >"$LAB_LOGS/capture-b-other.log"

# The daemon's scan address for the new choice is fresh: the station never used it near A.
fresh="$(sed -n 's/.*wlan0: address set to \([0-9a-f:]\{17\}\) for the scans.*/\1/p' "$LAB_LOGS/daemon.log" | tail -n 1)"
if [ -z "$fresh" ]; then
    fail switch-fresh-scan-address "the daemon did not report a fresh address for its scans: $(grep wlan0 "$LAB_LOGS/daemon.log" | grep -v 'policy stable-ssid, ' | tail -n 6 | tr '\n' ' ')"
elif grep -qx "$fresh" "$LAB_LOGS/sources-a"; then
    fail switch-fresh-scan-address "the daemon's scan address $fresh was used while $network_a was in range"
else
    pass switch-fresh-scan-address
fi

linking="$(addresses_named_in "$LAB_LOGS/sources-a" "$LAB_LOGS/capture-b-probes.log")"
if [ -n "$linking" ]; then
    fail switch-b-probe-requests "after $network_b came up, probe requests or their responses carried addresses used while $network_a was in range (A's address is $address_a):$linking"
else
    pass switch-b-probe-requests
fi
linking="$(addresses_named_in "$LAB_LOGS/sources-a" "$LAB_LOGS/capture-b-other.log")"
if [ -n "$linking" ]; then
    fail switch-b-never-sees-a "after $network_b came up, frames other than probe requests and responses carried addresses used while $network_a was in range (A's address is $address_a):$linking"
else
    pass switch-b-never-sees-a
fi

leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass switch-no-permanent-address
else
    fail switch-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi
