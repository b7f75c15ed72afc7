#!/bin/sh
# Fail closed: when the address cannot be set, the radio stays down. The lab's macveil binary is
# built with the lab-faults feature, whose seam makes every address change on the interface named
# by MACVEIL_LAB_FAIL_SET_ADDRESS fail as a driver without address changes would (EOPNOTSUPP).
# wpa_supplicant runs on wlan0 with its permanent address and has brought the radio up. After the
# failed `macveil wifi connect`, wlan0 must be down, still down seconds later, and nothing may
# have authenticated or associated.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-fail-closed
permanent="$(permanent_address wlan0)"

if ! macveil --version | grep -q '^lab faults: enabled'; then
    fail set-failure-seam "this macveil binary has no fault seam; build it with 'cargo build --features lab-faults'"
    exit
fi

# IFF_UP is bit 0 of the interface flags.
is_up() {
    [ $(($(cat "/sys/class/net/$1/flags") & 1)) = 1 ]
}

if ! start_capture; then
    fail set-failure-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail set-failure-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if ! start_idle_station "" "$ssid"; then
    fail set-failure-station "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi
if ! is_up wlan0; then
    fail set-failure-radio-up-before "wpa_supplicant did not bring wlan0 up, so the test proves nothing"
    exit
fi

MACVEIL_LAB_FAIL_SET_ADDRESS=wlan0 macveil_connect --ssid "$ssid" --policy random
if [ "$connect_status" != 1 ]; then
    fail set-failure-exit-status "macveil wifi connect exited with status $connect_status, expected 1: $(connect_output)"
elif ! grep -q 'stays down' "$connect_log"; then
    fail set-failure-exit-status "the error does not say that the radio stays down: $(connect_output)"
else
    pass set-failure-exit-status
fi

if is_up wlan0; then
    fail set-failure-radio-down "wlan0 is up right after the failed change"
else
    pass set-failure-radio-down
fi

# Nothing may bring the radio back up on its own: the supplicant waits for the interface.
sleep 5
if is_up wlan0; then
    fail set-failure-radio-stays-down "wlan0 came back up within 5 s"
else
    pass set-failure-radio-stays-down
fi
state="$(wpa status | sed -n 's/^wpa_state=//p')"
if [ "$state" = INTERFACE_DISABLED ]; then
    pass set-failure-supplicant-idle
else
    fail set-failure-supplicant-idle "wpa_supplicant is in state $state, expected INTERFACE_DISABLED"
fi
if [ "$(current_address wlan0)" = "$permanent" ]; then
    pass set-failure-address-unchanged
else
    fail set-failure-address-unchanged "wlan0 has $(current_address wlan0) although every change was to fail"
fi

stations="$(connected_stations | tr '\n' ' ')"
if ! stop_capture; then
    fail set-failure-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi
# tcpdump prints "Authentication (Open System)"; the access point's "DeAuthentication" when it
# stops does not count.
joins="$(grep -c -e ' Authentication (' -e 'Assoc Request' "$LAB_LOGS/capture.log")"
if [ -n "$stations" ] || [ "$joins" != 0 ]; then
    fail set-failure-no-association "hostapd reported stations [$stations] and the capture holds $joins authentication or association frames"
else
    pass set-failure-no-association
fi
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass set-failure-no-permanent-address
else
    fail set-failure-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi
