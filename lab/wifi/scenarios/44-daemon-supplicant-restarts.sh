#!/bin/sh
# The supplicant restarts under the daemon. The daemon runs with stable-ssid before a
# wpa_supplicant with two enabled networks, A and B, of which only A is in range. The supplicant
# is stopped and started three times within a few seconds while the daemon drives it, and the
# daemon must still connect to A with A's address. A clean stop must leave wlan0 with a fresh
# address instead of A's. Then the supplicant is killed (SIGKILL, so it cleans nothing up), A's
# access point goes away, B's comes up, and the supplicant starts again. B must never see an
# address that the station used while A was in range, in any frame but those addressed to A's
# BSSID, and the daemon must connect to B with B's address.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

start_two_networks restart || exit

# Three quick restarts while the daemon drives: each supplicant lives 1.5 s, about as long as
# the daemon needs to reach its socket and begin to connect.
for _ in 1 2 3; do
    start_enabled_station "$network_a" "$network_b"
    sleep 1.5
    stop_background wpa_supplicant
done
start_enabled_station "$network_a" "$network_b"
connections_before="$(grep -c "wlan0: connected to '$network_a' with" "$LAB_LOGS/daemon.log")"
if ! wait_for_connection "$network_a" $((connections_before + 1)); then
    fail restart-storm-connects "after three quick restarts the daemon reported no new connection to $network_a within 30 s: $(grep wlan0 "$LAB_LOGS/daemon.log" | tail -n 5 | tr '\n' ' ')"
    exit
fi
# shellcheck disable=SC2154 # start_background sets daemon_pid
if [ "$address" != "$address_a" ]; then
    fail restart-storm-connects "the daemon connected to $network_a with $address, expected $address_a"
elif ! kill -0 "$daemon_pid" 2>/dev/null; then
    fail restart-storm-connects "the daemon exited during the restarts"
else
    pass restart-storm-connects
fi

# A supplicant that stops cleanly takes the link down as it exits. With no driver left, the link
# rules give it a fresh address, so that the next supplicant does not scan with A's address.
stop_background wpa_supplicant
if wait_until 3 "[ \$(current_address wlan0) != $address_a ]"; then
    pass restart-stop-fresh-address
else
    fail restart-stop-fresh-address "wlan0 still had A's address $address_a 3 s after the supplicant stopped, so the next supplicant scans and connects with it"
fi
start_enabled_station "$network_a" "$network_b"
if ! wait_for_connection "$network_a" $((connections_before + 2)); then
    fail restart-stop-fresh-address "after a clean restart the daemon reported no new connection to $network_a within 30 s: $(grep wlan0 "$LAB_LOGS/daemon.log" | tail -n 5 | tr '\n' ' ')"
    exit
fi

# The supplicant dies without cleaning up: the link stays up with A's address.
# shellcheck disable=SC2154 # start_background sets wpa_supplicant_pid
kill -KILL "$wpa_supplicant_pid"
wait "$wpa_supplicant_pid" 2>/dev/null
after_kill="$(current_address wlan0)"
stop_background hostapd
# The kernel lists an access point for 30 s after its last frame. A scan with the flush flag,
# from a random address, drops A now, as time would after a move.
iw dev wlan0 scan flush randomise freq 2412 >/dev/null 2>>"$LAB_LOGS/tcpdump.log"
# B's access point is another device, with a BSSID of its own.
set_access_point_address 02:00:00:00:01:0b
if ! mark_capture "$switch_mark"; then
    fail restart-capture "the switch mark did not reach the capture within 10 s"
    exit
fi
if ! start_access_point open "$network_b"; then
    fail restart-capture "hostapd did not report AP-ENABLED for $network_b within 15 s"
    exit
fi
start_enabled_station "$network_a" "$network_b"
if ! wait_for_connection "$network_b" 1; then
    fail restart-kill-connects "after the supplicant was killed and restarted, the daemon reported no connection to $network_b within 30 s (wlan0 had $after_kill after the kill): $(grep wlan0 "$LAB_LOGS/daemon.log" | tail -n 5 | tr '\n' ' ')"
elif [ "$address" != "$address_b" ]; then
    fail restart-kill-connects "the daemon connected to $network_b with $address, expected $address_b"
else
    pass restart-kill-connects
fi

if ! stop_capture; then
    fail restart-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

# Every address the station sent from while A was in range, and the frames B could hear.
sources_while_in_range "$bssid_a" "$switch_mark" >"$LAB_LOGS/sources-a"
# Frames addressed to A's BSSID are the supplicant's attempts to regain A: they are not sent to
# B, although B can hear them.
frames_around_mark after "$switch_mark" | frames_not_to "$bssid_a" >"$LAB_LOGS/capture-b.log"
echo "$address_a" >>"$LAB_LOGS/sources-a"
linking="$(addresses_named_in "$LAB_LOGS/sources-a" "$LAB_LOGS/capture-b.log")"
if [ "$(wc -l <"$LAB_LOGS/sources-a")" -lt 2 ]; then
    fail restart-b-never-sees-a "the capture holds no frame from the station while $network_a was in range"
elif [ -n "$linking" ]; then
    fail restart-b-never-sees-a "after $network_b came up the station sent with addresses used while $network_a was in range (A's address is $address_a):$linking"
else
    pass restart-b-never-sees-a
fi

leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass restart-no-permanent-address
else
    fail restart-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi
