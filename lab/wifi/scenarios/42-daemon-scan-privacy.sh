#!/bin/sh
# The daemon turns on random scan addresses by itself in a wpa_supplicant that starts after it,
# and again after the supplicant restarts, which loses them. wlan0 keeps its permanent address
# (wifi.cloned-mac-address=permanent), the worst case, in which only the random scan addresses
# keep it out of probe requests. The supplicant's networks are disabled, so it scans only on
# request, after the daemon had its chance to send the command.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-daemon-scan
permanent="$(permanent_address wlan0)"
ap="$(current_address wlan1)"

config="$LAB_LOGS/macveil.conf"
printf '[connection]\nwifi.cloned-mac-address=permanent\n[device-wlan0]\nmatch-device=interface-name:wlan0\nmacveil.manage=yes\nwifi.scan-rand-mac-address=yes\n[device-others]\nmacveil.manage=no\n' >"$config"
start_background daemon macveil daemon -vv --config "$config" --state-dir "$LAB_LOGS/state"
if ! wait_until 10 "grep -q 'watching' '$LAB_LOGS/daemon.log'"; then
    fail daemon-scan-started "the daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
    exit
fi

if ! start_capture; then
    fail daemon-scan-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail daemon-scan-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi

# Counts the daemon's reports that wlan0's scans use random addresses.
applied() {
    grep -c 'wlan0: wpa_supplicant scans now use a new random address' "$LAB_LOGS/daemon.log"
}

for start in 1 2; do
    if ! start_idle_station "" "$ssid"; then
        fail daemon-scan-station "wpa_supplicant on wlan0 did not answer on its control socket within 10 s (start $start)"
        exit
    fi
    if wait_until 10 "[ \$(applied) -ge $start ]"; then
        pass "daemon-scan-applied-$start"
    else
        fail "daemon-scan-applied-$start" "the daemon did not turn on random scan addresses within 10 s of wpa_supplicant's start $start: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
        exit
    fi
    # The scans are 4 s apart. With 2 s, one of the two scans of a start showed no new
    # address here, probably because the first scan had not finished under software emulation.
    for scan in 1 2; do
        wpa scan >/dev/null
        sleep 4
    done
    stop_background wpa_supplicant
done

if ! stop_capture; then
    fail daemon-scan-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

# The access point sends no probe requests, so every broadcast probe request not from wlan1 is
# a scan of the station.
grep 'Probe Request' "$LAB_LOGS/capture.log" | grep 'DA:ff:ff:ff:ff:ff:ff' |
    sed -n 's/.* SA:\([0-9a-f:]\{17\}\).*/\1/p' | grep -vx "$ap" >"$LAB_LOGS/scan-sources"
scan_frames="$(wc -l <"$LAB_LOGS/scan-sources")"
scan_addresses="$(sort -u "$LAB_LOGS/scan-sources" | wc -l)"

if [ "$scan_frames" = 0 ]; then
    fail daemon-scan-no-permanent-address "the capture holds no probe request from the station, so nothing was checked"
elif grep -qx "$permanent" "$LAB_LOGS/scan-sources"; then
    fail daemon-scan-no-permanent-address "$(grep -cx "$permanent" "$LAB_LOGS/scan-sources") of $scan_frames probe requests carry the permanent address $permanent"
else
    pass daemon-scan-no-permanent-address
fi

# Four scans were requested, two per supplicant start.
if [ "$scan_addresses" -ge 3 ]; then
    pass daemon-scan-random-addresses
else
    fail daemon-scan-random-addresses "$scan_frames probe requests used $scan_addresses addresses [$(sort -u "$LAB_LOGS/scan-sources" | tr '\n' ' ')], expected a new random one for each of at least 3 scans"
fi

if [ "$(current_address wlan0)" = "$permanent" ]; then
    pass daemon-scan-address-unchanged
else
    fail daemon-scan-address-unchanged "wlan0 has $(current_address wlan0), expected its permanent address $permanent (policy permanent)"
fi
