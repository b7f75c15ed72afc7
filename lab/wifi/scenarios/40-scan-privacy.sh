#!/bin/sh
# Scan randomization keeps the permanent address out of every probe request: during scans while
# disconnected, during the supplicant's own scans after it lost the network, and between two
# connections. wpa_supplicant starts while wlan0 still has its permanent address, the worst case,
# in which only the random scan addresses protect the scans. `macveil wifi scan-privacy wlan0 on`
# turns on the kernel's random scan address (MAC_RAND_SCAN), and `macveil wifi connect` gives
# each connection its own random address.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-scan
permanent="$(permanent_address wlan0)"
ap="$(current_address wlan1)"

if ! start_capture; then
    fail scan-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail scan-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if ! start_idle_station "" "$ssid"; then
    fail scan-station "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi

macveil wifi scan-privacy wlan0 on --json >"$LAB_LOGS/macveil-scan-privacy.log" 2>&1
status=$?
shown="$(tr -d ' \t\n' <"$LAB_LOGS/macveil-scan-privacy.log")"
if [ "$status" != 0 ]; then
    fail scan-privacy-on "macveil wifi scan-privacy wlan0 on exited with status $status: $shown"
    exit
elif ! echo "$shown" | grep -q '"method":"kernel"'; then
    fail scan-privacy-on "expected the kernel's random scan address (method kernel): $shown"
    exit
fi
pass scan-privacy-on

# Scans while disconnected. A scan of the 11 channels of 2.4 GHz takes under a second here.
for scan in 1 2; do
    wpa scan >/dev/null
    sleep 2
done

if ! macveil_connect --ssid "$ssid" --policy random; then
    fail scan-first-connection "macveil wifi connect exited with status $connect_status: $(connect_output)"
    exit
fi
first="$connected_address"

# The network disappears while the station is connected. The supplicant scans for it on its
# own, and reconnects with the same address when it returns. The new hostapd starts a new log, so
# the count covers only the reconnection.
stop_background hostapd
sleep 4
start_access_point open "$ssid"
if wait_until 20 "[ \$(station_connections $first) -ge 1 ]"; then
    pass scan-automatic-reconnection
else
    fail scan-automatic-reconnection "the supplicant did not reconnect with $first within 20 s after the access point returned"
fi

# Between connections: disconnected by request, then a scan.
wpa disconnect >/dev/null
wpa scan >/dev/null
sleep 2

if ! macveil_connect --ssid "$ssid" --policy random; then
    fail scan-second-connection "macveil wifi connect exited with status $connect_status: $(connect_output)"
    exit
fi
second="$connected_address"

if ! stop_capture; then
    fail scan-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

# The access point sends no probe requests, so every probe request not from wlan1 is the
# station's. Broadcast probe requests are scans; unicast ones to the access point are the
# connection monitor's, which uses the connection's address.
grep 'Probe Request' "$LAB_LOGS/capture.log" | grep 'DA:ff:ff:ff:ff:ff:ff' |
    sed -n 's/.* SA:\([0-9a-f:]\{17\}\).*/\1/p' | grep -vx "$ap" >"$LAB_LOGS/scan-sources"
scan_frames="$(wc -l <"$LAB_LOGS/scan-sources")"
scan_addresses="$(sort -u "$LAB_LOGS/scan-sources" | wc -l)"

# Four scans were requested and the supplicant scanned on its own in between, so at least
# three different random addresses must appear.
if [ "$scan_addresses" -ge 3 ]; then
    pass scan-random-addresses
else
    fail scan-random-addresses "$scan_frames station probe requests used $scan_addresses addresses [$(sort -u "$LAB_LOGS/scan-sources" | tr '\n' ' ')], expected a new random one for each of at least 3 scans"
fi

if grep -qx "$permanent" "$LAB_LOGS/scan-sources"; then
    fail scan-no-permanent-address "$(grep -cx "$permanent" "$LAB_LOGS/scan-sources") probe requests carry the permanent address $permanent"
elif [ "$scan_frames" = 0 ]; then
    fail scan-no-permanent-address "the capture holds no probe request from the station, so nothing was checked"
else
    pass scan-no-permanent-address
fi

# The scans must not reveal the connections' addresses either.
if grep -qx -e "$first" -e "$second" "$LAB_LOGS/scan-sources"; then
    fail scan-not-association-address "probe requests of scans carry a connection address ($first or $second)"
else
    pass scan-not-association-address
fi

leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass scan-no-frame-with-permanent-address
else
    fail scan-no-frame-with-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi

if [ "$first" = "$second" ] || [ "$first" = "$permanent" ] || [ "$second" = "$permanent" ]; then
    fail scan-connection-addresses "the connections used $first and $second (permanent $permanent)"
else
    pass scan-connection-addresses
fi
