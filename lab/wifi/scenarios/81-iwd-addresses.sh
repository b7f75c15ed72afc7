#!/bin/sh
# iwd connects with macveil's stable-ssid address. iwd manages wlan0 (no wpa_supplicant, no
# NetworkManager), and a known open network file exists in /var/lib/iwd. `macveil check` flags
# iwd's default configuration. With AddressRandomization=network in main.conf, `macveil wifi
# iwd-sync wlan0` writes the network's address into the file as AddressOverride and keeps the
# file's other lines; `macveil check` then finds nothing about iwd. An address that macveil set
# on wlan0 before iwd started does not survive iwd's start: iwd recreates the interface, which
# gets the permanent address. `iwctl station STATION connect` then associates with the address
# `macveil gen --stable --stable-id '${NETWORK_SSID}'` predicts for the network, as hostapd and
# the capture show, and no captured frame carries the permanent address.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-iwd
permanent="$(permanent_address wlan0)"
phy="$(cat /sys/class/net/wlan0/phy80211/name)"
# shellcheck disable=SC2016 # the template is macveil's, not the shell's
expected="$(macveil gen --stable --stable-id '${NETWORK_SSID}' --ssid "$ssid" --ifname wlan0 --mac "$permanent")"
if [ -z "$expected" ]; then
    fail iwd-expected "macveil gen --stable printed no address for $ssid"
    exit
fi

# Prints the iwd codes in a `macveil check --json` report, one per line.
iwd_codes() {
    tr -d ' \t\n' <"$1" | grep -o '"code":"iwd-[a-z-]*"' | sed 's/"code":"//; s/"$//'
}

# A known network as a user provisions it: a comment and a setting that must survive.
mkdir -p /etc/iwd /var/lib/iwd
network_file="/var/lib/iwd/$ssid.open"
printf '# provisioned by the lab\n[Settings]\nAutoConnect=false\n' >"$network_file"
rm -f /etc/iwd/main.conf

# 1. iwd's defaults: AddressRandomization=disabled.
macveil check --json >"$LAB_LOGS/macveil-check-before.log" 2>&1
if iwd_codes "$LAB_LOGS/macveil-check-before.log" | grep -qx iwd-address-randomization; then
    pass iwd-check-flags-default
else
    fail iwd-check-flags-default "macveil check did not report iwd-address-randomization: $(head -c 600 "$LAB_LOGS/macveil-check-before.log")"
fi

# 2. macveil's fix: per-network addresses in iwd, with macveil's address for the network.
printf '[General]\nAddressRandomization=network\n' >/etc/iwd/main.conf
macveil_config="$LAB_LOGS/macveil.conf"
printf '[connection-wlan0]\nmatch-device=interface-name:wlan0\nwifi.cloned-mac-address=stable-ssid\n' >"$macveil_config"
macveil wifi iwd-sync wlan0 --config "$macveil_config" --json >"$LAB_LOGS/macveil-iwd-sync.log" 2>&1
sync_status=$?
expected_file="$(printf '# provisioned by the lab\n[Settings]\nAutoConnect=false\nAddressOverride=%s\n' "$expected")"
if [ "$sync_status" != 0 ]; then
    fail iwd-sync-file "macveil wifi iwd-sync exited with status $sync_status: $(head -c 600 "$LAB_LOGS/macveil-iwd-sync.log")"
elif [ "$(cat "$network_file")" != "$expected_file" ]; then
    fail iwd-sync-file "$network_file contains [$(tr '\n' '|' <"$network_file")], expected [$(echo "$expected_file" | tr '\n' '|')]"
else
    pass iwd-sync-file
fi

macveil check --json >"$LAB_LOGS/macveil-check-after.log" 2>&1
after="$(iwd_codes "$LAB_LOGS/macveil-check-after.log" | tr '\n' ' ')"
if [ -n "$after" ]; then
    fail iwd-check-clean-after-sync "macveil check still reports $after"
else
    pass iwd-check-clean-after-sync
fi

# 3. iwd starts on a radio that already has an address of macveil's.
if ! macveil set wlan0 --random >"$LAB_LOGS/macveil-set.log" 2>&1; then
    fail iwd-setup "macveil set wlan0 --random failed: $(head -n 3 "$LAB_LOGS/macveil-set.log" | tr '\n' ' ')"
    exit
fi
set_address="$(current_address wlan0)"
if ! start_capture; then
    fail iwd-setup "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail iwd-setup "hostapd did not report AP-ENABLED for $ssid within 15 s"
    exit
fi
if ! start_iwd "$phy"; then
    fail iwd-setup "$iwd_start_error"
    exit
fi
station="$iwd_station"
echo "lab: iwd's station interface on $phy is $station"
start_address="$(current_address "$station")"
if [ "$start_address" = "$permanent" ] && [ "$set_address" != "$permanent" ]; then
    pass iwd-recreates-interface
else
    fail iwd-recreates-interface "wlan0 had $set_address before iwd, and iwd's interface $station has $start_address, expected the permanent address $permanent"
fi

# 4. The connection, once iwd's scans have found the network, because iwctl connects only to
# networks in the scan results.
iwctl station "$station" scan >"$LAB_LOGS/iwctl.log" 2>&1
if ! wait_until 20 "iwctl station $station get-networks 2>/dev/null | grep -q '$ssid'"; then
    fail iwd-association-address "iwd's scans did not find $ssid within 20 s"
    connect_status=1
else
    iwctl station "$station" connect "$ssid" >>"$LAB_LOGS/iwctl.log" 2>&1
    connect_status=$?
fi
if [ "$connect_status" != 0 ]; then
    fail iwd-association-address "iwctl station $station connect $ssid exited with status $connect_status: $(head -n 3 "$LAB_LOGS/iwctl.log" | tr '\n' ' ')"
elif ! wait_until 15 "[ \$(station_connections $expected) -ge 1 ]"; then
    fail iwd-association-address "hostapd saw [$(connected_stations | tr '\n' ' ')], expected $expected"
elif [ "$(current_address "$station")" != "$expected" ]; then
    fail iwd-association-address "$station has $(current_address "$station"), expected $expected"
else
    pass iwd-association-address
fi

stop_background iwd
if ! stop_capture; then
    fail iwd-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi
sources="$(captured_sources 'Authentication\|Assoc Request' | grep -vx "$(current_address wlan1)" | sort -u | tr '\n' ' ')"
if [ "$sources" != "$expected " ]; then
    fail iwd-capture-association "authentication and association frames came from [$sources], expected only $expected"
else
    pass iwd-capture-association
fi
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" != 0 ]; then
    fail iwd-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
else
    pass iwd-no-permanent-address
fi
