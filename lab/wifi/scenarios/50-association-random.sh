#!/bin/sh
# `random`: every `macveil wifi connect` gives the connection a new random address. As macveil's
# udev rule does when the link appears, `macveil set wlan0 --random` gives wlan0 an address before
# wpa_supplicant starts, so the supplicant never reads the permanent address and derives its WPS
# UUID from the random one. hostapd and the capture must see a new address at each of three connections, and
# no frame may carry the permanent address or the WPS UUID derived from it.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-random-policy
permanent="$(permanent_address wlan0)"

ip link set wlan0 down
if ! macveil set wlan0 --random >"$LAB_LOGS/macveil-set.log" 2>&1; then
    fail random-policy-boot-address "macveil set wlan0 --random failed: $(head -n 3 "$LAB_LOGS/macveil-set.log" | tr '\n' ' ')"
    exit
fi
boot_address="$(current_address wlan0)"

if ! start_capture; then
    fail random-policy-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail random-policy-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if ! start_idle_station "" "$ssid"; then
    fail random-policy-station "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi
if ! macveil wifi scan-privacy wlan0 on >"$LAB_LOGS/macveil-scan-privacy.log" 2>&1; then
    fail random-policy-scan-privacy "macveil wifi scan-privacy wlan0 on failed: $(head -n 3 "$LAB_LOGS/macveil-scan-privacy.log" | tr '\n' ' ')"
    exit
fi

addresses=""
for connection in 1 2 3; do
    if ! macveil_connect --ssid "$ssid" --policy random; then
        fail random-policy-connect "connection $connection: macveil wifi connect exited with status $connect_status: $(connect_output)"
        exit
    fi
    if ! wait_until 5 "[ \$(station_connections $connected_address) -ge 1 ]"; then
        fail random-policy-hostapd "connection $connection: hostapd did not report $connected_address as connected"
    fi
    addresses="$addresses $connected_address"
done
pass random-policy-connect

if ! stop_capture; then
    fail random-policy-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

distinct="$(echo $addresses | tr ' ' '\n' | sort -u | grep -vx -e "$permanent" -e "$boot_address" | wc -l)"
if [ "$distinct" = 3 ]; then
    pass random-policy-new-each-connection
else
    fail random-policy-new-each-connection "the three connections used [$addresses], expected three new addresses (permanent $permanent, boot address $boot_address)"
fi

association_sources="$(captured_sources 'Assoc Request' | tr '\n' ' ')"
if [ "$association_sources" = "$(echo $addresses) " ]; then
    pass random-policy-capture-association
else
    fail random-policy-capture-association "association requests came from [$association_sources], expected [$(echo $addresses)] in that order"
fi

leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass random-policy-no-permanent-address
else
    fail random-policy-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi

# wpa_supplicant derived its WPS UUID from the address wlan0 had when it started, which macveil
# had already changed. The UUID is in the probe requests of its scans, whatever their address.
ap="$(current_address wlan1)"
permanent_uuid="$(wps_uuid_for_address "$permanent")"
uuids=""
for source in $(captured_sources 'Probe Request' | grep -vx "$ap" | sort -u); do
    uuids="$uuids $(captured_wps_uuids "$source" | sort -u | tr '\n' ' ')"
done
if [ -z "$(echo $uuids)" ]; then
    fail random-policy-wps-uuid "no probe request from the station carried a WPS UUID to compare"
elif echo "$uuids" | grep -q "$permanent_uuid"; then
    fail random-policy-wps-uuid "probe requests carried the WPS UUID $permanent_uuid derived from the permanent address"
else
    pass random-policy-wps-uuid
fi
