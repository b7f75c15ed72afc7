#!/bin/sh
# `macveil set wlan0 --random` runs on the down radio before wpa_supplicant starts. Then the
# access point and the capture see the new address at association, and no captured frame carries
# the permanent address or the WPS UUID derived from it. `macveil show wlan0` reports the
# permanent (phy) address and the verdict "anonymized".

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

permanent="$(permanent_address wlan0)"
ap="$(current_address wlan1)"

ip link set wlan0 down
macveil set wlan0 --random >"$LAB_LOGS/macveil-set.log" 2>&1
status=$?
address="$(current_address wlan0)"
first_octet="0x${address%%:*}"
if [ "$status" != 0 ]; then
    fail random-set "macveil set wlan0 --random exited with status $status: $(head -n 3 "$LAB_LOGS/macveil-set.log" | tr '\n' ' ')"
    exit
elif [ "$address" = "$permanent" ]; then
    fail random-set "wlan0 still has its permanent address $permanent after macveil set exited with status 0"
    exit
elif [ $((first_octet & 1)) != 0 ]; then
    fail random-set "wlan0 got the group (multicast) address $address"
    exit
fi
pass random-set

if ! start_capture; then
    fail random-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open macveil-lab-random; then
    fail random-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if ! start_station open macveil-lab-random; then
    fail random-association "wpa_supplicant on wlan0 did not report CTRL-EVENT-CONNECTED within 30 s"
    exit
fi
wait_until 5 "connected_stations | grep -q ."
hostapd_stations="$(connected_stations | sort -u | tr '\n' ' ')"

# The JSON output is the stable interface; removing white space makes the match independent of
# how it is indented.
macveil show --json wlan0 >"$LAB_LOGS/macveil-show.log" 2>&1
status=$?
shown="$(tr -d ' \t\n' <"$LAB_LOGS/macveil-show.log")"
if [ "$status" != 0 ]; then
    fail random-show "macveil show --json wlan0 exited with status $status: $(head -n 3 "$LAB_LOGS/macveil-show.log" | tr '\n' ' ')"
elif ! echo "$shown" | grep -qi "\"permanent\":\"$permanent\""; then
    fail random-show "macveil show does not report the permanent address $permanent: $shown"
elif ! echo "$shown" | grep -qi "\"address\":\"$address\""; then
    fail random-show "macveil show does not report the current address $address: $shown"
elif ! echo "$shown" | grep -q '"verdict":"anonymized"'; then
    fail random-show "macveil show does not report the verdict anonymized: $shown"
else
    pass random-show
fi

if ! stop_capture; then
    fail random-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

association_sources="$(captured_sources 'Assoc Request' | sort -u | tr '\n' ' ')"
if [ "$association_sources" != "$address " ]; then
    fail random-association "association requests came from [$association_sources], expected the new address $address"
elif [ "$hostapd_stations" != "$address " ]; then
    fail random-association "hostapd reported stations [$hostapd_stations], expected the new address $address"
else
    pass random-association
fi

probe_sources="$(captured_sources 'Probe Request' | grep -vx "$ap" | sort -u | tr '\n' ' ')"
if [ "$probe_sources" = "$address " ]; then
    pass random-probe-request
else
    fail random-probe-request "station probe requests came from [$probe_sources], expected the new address $address"
fi

# After the change nothing on the air should name the permanent address, so a match in any
# header field is a leak, whichever radio sent the frame.
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass random-no-permanent-address
else
    fail random-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi

# wpa_supplicant derives the WPS UUID in its probe requests from the address wlan0 had when it
# started, so a change made before the start also replaces the UUID.
permanent_uuid="$(wps_uuid_for_address "$permanent")"
uuids="$(captured_wps_uuids "$address" | sort -u | tr '\n' ' ')"
if [ -z "$uuids" ]; then
    fail random-wps-uuid "no probe request from $address carried a WPS UUID to compare"
elif echo "$uuids" | grep -q "$permanent_uuid"; then
    fail random-wps-uuid "probe requests carried the WPS UUID $permanent_uuid derived from the permanent address"
else
    pass random-wps-uuid
fi
