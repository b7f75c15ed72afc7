#!/bin/sh
# Baseline for the reason macveil rejects preassoc_mac_addr: wpa_supplicant 2.10 with
# preassoc_mac_addr=1 and mac_addr=0 changes the interface address for a scan, and before the
# next association puts back the address it started with, here the permanent one. An address set
# in between (as `ip link` does here, without macveil) is lost, and the association carries the
# permanent address. If a later wpa_supplicant stops doing this, this scenario fails and the
# rejection in `macveil wifi connect` can be revisited.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-preassoc
permanent="$(permanent_address wlan0)"
chosen=02:12:34:56:78:9a

if ! start_capture; then
    fail preassoc-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail preassoc-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if ! start_idle_station "preassoc_mac_addr=1" "$ssid"; then
    fail preassoc-station "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi

wpa scan >/dev/null
if wait_until 5 "[ \"\$(current_address wlan0)\" != $permanent ]"; then
    pass preassoc-scan-changes-interface
else
    fail preassoc-scan-changes-interface "wlan0 kept $permanent during a scan with preassoc_mac_addr=1"
fi
sleep 2

ip link set wlan0 down
ip link set wlan0 address "$chosen"
ip link set wlan0 up
wait_until 5 "wpa status | grep -q address=$chosen"
wpa select_network 0 >/dev/null
if ! wait_until 20 "wpa status | grep -q wpa_state=COMPLETED"; then
    fail preassoc-restores-start-address "wpa_supplicant did not connect within 20 s"
    exit
fi
stop_capture

association_sources="$(captured_sources 'Assoc Request' | sort -u | tr '\n' ' ')"
if [ "$association_sources" = "$permanent " ]; then
    pass preassoc-restores-start-address
else
    fail preassoc-restores-start-address "association requests came from [$association_sources]; wpa_supplicant no longer puts back its start address $permanent (the address set was $chosen)"
fi
