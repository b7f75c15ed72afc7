#!/bin/sh
# Supplicant configurations that the daemon must handle with care, each with the daemon running
# stable-ssid before the supplicant starts:
# - Two networks with the same SSID, the first open and the second WPA2-PSK, and a WPA2 access
#   point: the daemon must connect with the WPA2 network.
# - A network block with mac_addr=1: the daemon must not drive the link and must log the reason.
#   The supplicant, which then sets its own address, must connect without the permanent address.
# - No enabled network: the daemon must log that it has none to choose. When a user enables A
#   with wpa_cli, and later B after A's access point went away, B must not see the address the
#   station used with A.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

shared_ssid=macveil-lab-config-shared
own_ssid=macveil-lab-config-own-address
network_a=macveil-lab-config-a
network_b=macveil-lab-config-b
permanent="$(permanent_address wlan0)"

write_daemon_config 'wifi.cloned-mac-address=stable-ssid'
if ! start_daemon daemon; then
    fail config-daemon "the daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
    exit
fi
if ! start_capture; then
    fail config-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi

# Starts wpa_supplicant on wlan0 as the background process $1, with the network blocks in $2,
# one "network={...}" per line with settings separated by ";".
start_supplicant_with() {
    config="$LAB_LOGS/$1.conf"
    {
        echo "ctrl_interface=/run/wpa_supplicant"
        echo "$2" | sed 's/;/\n    /g; s/{/{\n    /; s/}$/\n}/'
    } >"$config"
    start_background "$1" wpa_supplicant -i wlan0 -D nl80211 -c "$config"
}
daemon_lines() {
    grep wlan0 "$LAB_LOGS/daemon.log" | grep -v ', action ' | tail -n "$1" | tr '\n' ' '
}

# --- the same SSID, open and WPA2 ---------------------------------------------------------
if ! start_access_point wpa2 "$shared_ssid"; then
    fail config-capture "hostapd did not report AP-ENABLED for $shared_ssid within 15 s"
    exit
fi
start_supplicant_with supplicant_shared "network={ssid=\"$shared_ssid\";key_mgmt=NONE;scan_freq=2412}
network={ssid=\"$shared_ssid\";psk=\"macveil-lab-passphrase\";scan_freq=2412}"
shared_address="$(stable_ssid_address "$shared_ssid")"
if wait_until 20 "[ -n \"\$(daemon_connection $shared_ssid 1 '$LAB_LOGS/daemon.log')\" ]"; then
    if [ "$(daemon_connection "$shared_ssid" 1 "$LAB_LOGS/daemon.log")" = "$shared_address" ]; then
        pass config-same-ssid-security
    else
        fail config-same-ssid-security "the daemon connected to $shared_ssid with $(daemon_connection "$shared_ssid" 1 "$LAB_LOGS/daemon.log"), expected $shared_address"
    fi
else
    fail config-same-ssid-security "with an open and a WPA2 network named $shared_ssid and a WPA2 access point, the daemon reported no connection within 20 s: $(grep -e 'connecting to' -e 'not connected' "$LAB_LOGS/daemon.log" | tail -n 2 | tr '\n' ' ') wpa_supplicant: $(grep -v DSCP "$LAB_LOGS/supplicant_shared.log" | tail -n 3 | tr '\n' ' ')"
fi
stop_background supplicant_shared
stop_background hostapd

# --- a network block with mac_addr=1 ------------------------------------------------------
if ! start_access_point open "$own_ssid"; then
    fail config-capture "hostapd did not report AP-ENABLED for $own_ssid within 15 s"
    exit
fi
start_supplicant_with supplicant_own "network={ssid=\"$own_ssid\";key_mgmt=NONE;scan_freq=2412;mac_addr=1}"
if wait_until 10 "grep -q 'network 0 mac_addr=1' '$LAB_LOGS/daemon.log'"; then
    if grep -q "chooses among the networks '$own_ssid'" "$LAB_LOGS/daemon.log"; then
        fail config-mac-addr-refused "the daemon logged the refusal but chose among the networks anyway"
    else
        pass config-mac-addr-refused
    fi
else
    fail config-mac-addr-refused "the daemon did not say within 10 s that network 0 has mac_addr=1: $(daemon_lines 4)"
fi
if ! wait_until 20 "[ -n \"\$(connected_stations)\" ]"; then
    fail config-mac-addr-own-address "the supplicant did not connect on its own within 20 s"
else
    own="$(connected_stations | tail -n 1)"
    sleep 3
    supplicant_address="$(wpa status | sed -n 's/^address=//p')"
    if [ "$own" = "$permanent" ]; then
        fail config-mac-addr-own-address "the supplicant connected with the permanent address"
    elif [ "$(current_address wlan0)" != "$own" ] || [ "$supplicant_address" != "$own" ]; then
        fail config-mac-addr-own-address "the supplicant connected with $own, but 3 s later wlan0 has $(current_address wlan0) and the supplicant reports $supplicant_address"
    elif [ "$(connected_stations | wc -l)" != 1 ]; then
        fail config-mac-addr-own-address "hostapd reported $(connected_stations | wc -l) connections, expected one that lasts: [$(connected_stations | tr '\n' ' ')]"
    else
        pass config-mac-addr-own-address
    fi
fi
stop_background supplicant_own
stop_background hostapd

# --- no enabled network, networks enabled later by a user ---------------------------------
set_access_point_address 02:00:00:00:01:0a
if ! mark_capture macveil-lab-mark-a; then
    fail config-capture "the mark before $network_a did not reach the capture within 10 s"
    exit
fi
if ! start_access_point open "$network_a"; then
    fail config-capture "hostapd did not report AP-ENABLED for $network_a within 15 s"
    exit
fi
start_supplicant_with wpa_supplicant "network={ssid=\"$network_a\";key_mgmt=NONE;scan_freq=2412;disabled=1}
network={ssid=\"$network_b\";key_mgmt=NONE;scan_freq=2412;disabled=1}"
if wait_until 10 "grep -q 'wpa_supplicant has no enabled network' '$LAB_LOGS/daemon.log'"; then
    pass config-no-enabled-network
else
    fail config-no-enabled-network "the daemon did not say within 10 s that it has no network to choose: $(daemon_lines 4)"
fi
wpa enable_network 0 >/dev/null
wait_until 20 "[ \$(connected_stations | wc -l) -ge 1 ]"
stop_background hostapd
set_access_point_address 02:00:00:00:01:0b
if ! mark_capture macveil-lab-mark-b; then
    fail config-capture "the mark before $network_b did not reach the capture within 10 s"
    exit
fi
if ! start_access_point open "$network_b"; then
    fail config-capture "hostapd did not report AP-ENABLED for $network_b within 15 s"
    exit
fi
wpa enable_network 1 >/dev/null
wait_until 20 "[ -n \"\$(connected_stations)\" ]"
b_stations="$(connected_stations | tr '\n' ' ')"

if ! stop_capture; then
    fail config-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi
frames_around_mark after macveil-lab-mark-a >"$LAB_LOGS/capture-from-a.log"
# A was in range until its last frame: the addresses the station used up to then are A's. A
# scan that began after A went and ended after the mark is not A's.
sed -n '/Probe Request (macveil-lab-mark-b)/q; p' "$LAB_LOGS/capture-from-a.log" >"$LAB_LOGS/capture-a.log"
last_a="$(grep -n "SA:02:00:00:00:01:0a" "$LAB_LOGS/capture-a.log" | tail -n 1 | cut -d: -f1)"
head -n "${last_a:-0}" "$LAB_LOGS/capture-a.log" | station_sources >"$LAB_LOGS/sources-a"
sed -n '/Probe Request (macveil-lab-mark-b)/,$p' "$LAB_LOGS/capture-from-a.log" | sed 1d |
    frames_not_to 02:00:00:00:01:0a >"$LAB_LOGS/capture-b.log"
linking="$(addresses_named_in "$LAB_LOGS/sources-a" "$LAB_LOGS/capture-b.log")"
if [ ! -s "$LAB_LOGS/sources-a" ]; then
    fail config-enabled-later-b-never-sees-a "the station sent nothing while $network_a was in range"
elif [ -n "$linking" ]; then
    fail config-enabled-later-b-never-sees-a "with networks enabled by wpa_cli, $network_b (stations [$b_stations]) saw addresses used with $network_a:$linking"
else
    pass config-enabled-later-b-never-sees-a
fi

leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass config-no-permanent-address
else
    fail config-no-permanent-address "$leaks captured frames carry the permanent address $permanent: $(frame_kinds_with_address "$permanent" "$LAB_LOGS/capture.log")"
fi
