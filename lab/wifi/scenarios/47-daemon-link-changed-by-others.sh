#!/bin/sh
# Other programs change the link while the daemon drives it. The daemon runs with stable-ssid
# before a wpa_supplicant with two enabled networks, A and B, of which only A is in range.
# - While the daemon makes the first connection, wlan0 goes down and up every 0.6 s, 3 times.
#   The daemon must still connect to A with A's address.
# - While connected, another program takes wlan0 down, gives it an address of its own and
#   brings it up. The supplicant reconnects to A with that address.
# - Then a program writes the permanent address while wlan0 is down and brings it up 2 s later.
#   The daemon must replace it before, so that no frame carries the permanent address.
# - A's access point goes away and B's, with a BSSID of its own, comes up. The daemon must
#   connect to B with B's address, and B must see none of the addresses used near A.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

other_address=02:5a:5a:5a:5a:5a
start_two_networks others || exit

start_enabled_station "$network_a" "$network_b"
for _ in 1 2 3; do
    ip link set wlan0 down
    sleep 0.3
    ip link set wlan0 up
    sleep 0.3
done
# A connection attempt that the flapping broke is retried after 10 s.
if ! wait_for_connection "$network_a" 1 30; then
    fail others-flapping-connects "the daemon reported no connection to $network_a within 30 s of the flapping: $(grep wlan0 "$LAB_LOGS/daemon.log" | grep -v ', action ' | tail -n 4 | tr '\n' ' ')"
    exit
elif [ "$address" != "$address_a" ] || [ "$(current_address wlan0)" != "$address_a" ]; then
    fail others-flapping-connects "the daemon connected to $network_a with $address, and wlan0 has $(current_address wlan0); expected $address_a"
else
    pass others-flapping-connects
fi

# Another program gives wlan0 an address of its own; the supplicant reconnects with it.
ip link set wlan0 down
ip link set wlan0 address "$other_address"
ip link set wlan0 up
wait_until 10 "[ \$(station_connections $other_address) -ge 1 ]"

# The permanent address, written while the link is down.
ip link set wlan0 down
ip link set wlan0 address "$permanent"
sleep 2
held="$(current_address wlan0)"
ip link set wlan0 up
if [ "$held" = "$permanent" ]; then
    fail others-permanent-replaced "wlan0 still had its permanent address 2 s after a program wrote it while the link was down"
else
    pass others-permanent-replaced
fi
wait_until 5 "[ \$(station_connections \$(current_address wlan0)) -ge 1 ]"
reconnected="$(current_address wlan0)"

stop_background hostapd
set_access_point_address 02:00:00:00:01:0b
if ! mark_capture "$switch_mark"; then
    fail others-capture "the switch mark did not reach the capture within 10 s"
    exit
fi
if ! start_access_point open "$network_b"; then
    fail others-capture "hostapd did not report AP-ENABLED for $network_b within 15 s"
    exit
fi
if ! wait_for_connection "$network_b" 1 35; then
    fail others-switch-connects "the daemon reported no connection to $network_b within 35 s of its access point's start (wlan0 had $reconnected with $network_a): $(grep wlan0 "$LAB_LOGS/daemon.log" | grep -v ', action ' | tail -n 4 | tr '\n' ' ')"
elif [ "$address" != "$address_b" ]; then
    fail others-switch-connects "the daemon connected to $network_b with $address, expected $address_b"
else
    pass others-switch-connects
fi

if ! stop_capture; then
    fail others-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

sources_while_in_range "$bssid_a" "$switch_mark" >"$LAB_LOGS/sources-a"
echo "$address_a" >>"$LAB_LOGS/sources-a"
# Frames addressed to A's BSSID are the supplicant's attempts to regain A: they are not sent to
# B, although B can hear them.
frames_around_mark after "$switch_mark" | frames_not_to "$bssid_a" >"$LAB_LOGS/capture-b.log"
linking="$(addresses_named_in "$LAB_LOGS/sources-a" "$LAB_LOGS/capture-b.log")"
if ! grep -qx "$other_address" "$LAB_LOGS/sources-a"; then
    fail others-b-never-sees-a "the station never sent from $other_address near $network_a, so the test proves less than it should: [$(sort -u "$LAB_LOGS/sources-a" | tr '\n' ' ')]"
elif [ -n "$linking" ]; then
    fail others-b-never-sees-a "after $network_b came up the station sent with addresses used while $network_a was in range (A's address is $address_a):$linking"
else
    pass others-b-never-sees-a
fi

leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass others-no-permanent-address
else
    fail others-no-permanent-address "$leaks captured frames carry the permanent address $permanent: $(frame_kinds_with_address "$permanent" "$LAB_LOGS/capture.log")"
fi
