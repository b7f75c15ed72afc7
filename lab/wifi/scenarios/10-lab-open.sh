#!/bin/sh
# Lab sanity on an open network, which proves that the lab itself works. mac80211_hwsim gives two
# radios and the monitor hwsim0. hostapd runs an open access point on wlan1, and wpa_supplicant
# associates wlan0 with it. The capture on hwsim0 shows the station's probe request and
# association request, each with the station's source address (SA).

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

radios_ok=1
for interface in wlan0 wlan1; do
    if [ ! -e "/sys/class/net/$interface/phy80211" ]; then
        fail lab-radios "$interface has no wireless phy"
        radios_ok=0
    fi
done
# ARPHRD_IEEE80211_RADIOTAP (803): hwsim0 delivers frames with a radiotap header.
if [ "$(cat /sys/class/net/hwsim0/type 2>/dev/null)" != 803 ]; then
    fail lab-radios "hwsim0 is missing or is not a radiotap monitor"
    radios_ok=0
fi
if [ "$radios_ok" = 1 ]; then
    pass lab-radios
fi

station="$(current_address wlan0)"
ap="$(current_address wlan1)"

if ! start_capture; then
    fail lab-open-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open macveil-lab-open; then
    fail lab-open-ap "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
pass lab-open-ap

if ! start_station open macveil-lab-open; then
    fail lab-open-association "wpa_supplicant on wlan0 did not report CTRL-EVENT-CONNECTED within 30 s"
    exit
fi
if wait_until 5 "connected_stations | grep -qx '$station'"; then
    pass lab-open-association
else
    fail lab-open-association "hostapd reported connected stations [$(connected_stations | tr '\n' ' ')], expected $station"
fi
if ! stop_capture; then
    fail lab-open-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

# The access point sends no probe requests, so every probe request not from wlan1 is the station's.
probe_sources="$(captured_sources 'Probe Request' | grep -vx "$ap" | sort -u | tr '\n' ' ')"
if [ "$probe_sources" = "$station " ]; then
    pass lab-open-capture-probe-request
else
    fail lab-open-capture-probe-request "probe requests on hwsim0 came from [$probe_sources], expected only $station"
fi

association_sources="$(captured_sources 'Assoc Request' | sort -u | tr '\n' ' ')"
if [ "$association_sources" = "$station " ]; then
    pass lab-open-capture-association
else
    fail lab-open-capture-association "association requests on hwsim0 came from [$association_sources], expected only $station"
fi
