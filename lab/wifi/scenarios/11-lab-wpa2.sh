#!/bin/sh
# Lab sanity on a WPA2-PSK network. hostapd runs a WPA2-PSK access point on wlan1, and
# wpa_supplicant on wlan0 completes the 4-way handshake, after which it reports
# CTRL-EVENT-CONNECTED. The capture on hwsim0 shows the association request and the EAPOL-Key
# frames.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

station="$(current_address wlan0)"

if ! start_capture; then
    fail lab-wpa2-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point wpa2 macveil-lab-wpa2; then
    fail lab-wpa2-ap "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
pass lab-wpa2-ap

if ! start_station wpa2 macveil-lab-wpa2; then
    fail lab-wpa2-association "wpa_supplicant on wlan0 did not report CTRL-EVENT-CONNECTED within 30 s"
    exit
fi
if wait_until 5 "connected_stations | grep -qx '$station'"; then
    pass lab-wpa2-association
else
    fail lab-wpa2-association "hostapd reported connected stations [$(connected_stations | tr '\n' ' ')], expected $station"
fi
if ! stop_capture; then
    fail lab-wpa2-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

association_sources="$(captured_sources 'Assoc Request' | sort -u | tr '\n' ' ')"
eapol_from_station="$(captured_sources 'EAPOL' | grep -cx "$station")"
if [ "$association_sources" != "$station " ]; then
    fail lab-wpa2-capture "association requests on hwsim0 came from [$association_sources], expected only $station"
elif [ "$eapol_from_station" -lt 2 ]; then
    # The station sends messages 2 and 4 of the 4-way handshake.
    fail lab-wpa2-capture "hwsim0 captured $eapol_from_station EAPOL frames from $station, expected at least 2"
else
    pass lab-wpa2-capture
fi
