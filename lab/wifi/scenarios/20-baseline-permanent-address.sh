#!/bin/sh
# Baseline without any randomization. The station's probe requests and its association request
# carry wlan0's permanent address, and the WPS UUID in its probe requests is derived from it. This
# proves that the capture on hwsim0 sees the leaks that the randomization scenarios check for, so
# it fails if the capture missed the station's frames.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

permanent="$(permanent_address wlan0)"
ap="$(current_address wlan1)"

if [ "$(current_address wlan0)" != "$permanent" ]; then
    fail baseline-address "wlan0 has $(current_address wlan0), not its permanent address $permanent"
    exit
fi

if ! start_capture; then
    fail baseline-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open macveil-lab-baseline; then
    fail baseline-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if ! start_station open macveil-lab-baseline; then
    fail baseline-capture "wpa_supplicant on wlan0 did not report CTRL-EVENT-CONNECTED within 30 s"
    exit
fi
wait_until 5 "connected_stations | grep -q ."
hostapd_stations="$(connected_stations | sort -u | tr '\n' ' ')"
if ! stop_capture; then
    fail baseline-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

probe_sources="$(captured_sources 'Probe Request' | grep -vx "$ap" | sort -u | tr '\n' ' ')"
if [ "$probe_sources" = "$permanent " ]; then
    pass baseline-probe-request-permanent
else
    fail baseline-probe-request-permanent "station probe requests came from [$probe_sources], expected the permanent address $permanent"
fi

association_sources="$(captured_sources 'Assoc Request' | sort -u | tr '\n' ' ')"
if [ "$association_sources" != "$permanent " ]; then
    fail baseline-association-permanent "association requests came from [$association_sources], expected the permanent address $permanent"
elif [ "$hostapd_stations" != "$permanent " ]; then
    fail baseline-association-permanent "hostapd reported stations [$hostapd_stations], expected the permanent address $permanent"
else
    pass baseline-association-permanent
fi

# The randomization scenarios expect this count to be zero. Here it must find the frames, because
# otherwise that check could never fail.
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" -gt 0 ]; then
    pass baseline-leak-detected
else
    fail baseline-leak-detected "no captured frame names the permanent address $permanent"
fi

# wpa_supplicant derives its WPS UUID from the address the interface has when it starts, and sends
# it in every probe request. The same computation in the randomization scenarios must not match.
expected_uuid="$(wps_uuid_for_address "$permanent")"
uuids="$(captured_wps_uuids "$permanent" | sort -u | tr '\n' ' ')"
if [ "$uuids" = "$expected_uuid " ]; then
    pass baseline-wps-uuid-permanent
else
    fail baseline-wps-uuid-permanent "probe requests carried WPS UUIDs [$uuids], expected $expected_uuid derived from $permanent"
fi
