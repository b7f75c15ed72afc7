#!/bin/sh
# Fail closed while the daemon drives: the daemon runs with stable-ssid and the fault seam
# (MACVEIL_LAB_FAIL_SET_ADDRESS=wlan0), which makes every address change of its Wi-Fi driver on
# wlan0 fail as a driver without address changes would (EOPNOTSUPP). The link rules still work.
# The supplicant starts with network A enabled before A's access point is up, so it cannot
# connect on its own before the daemon disconnects it. When A comes into range, the daemon
# chooses it and cannot set A's address: wlan0 must go down and stay down across the daemon's
# retry 10 s later, the supplicant must wait, and nothing may authenticate or associate.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

network_a=macveil-lab-drive-fail
permanent="$(permanent_address wlan0)"

if ! macveil --version | grep -q '^lab faults: enabled'; then
    fail drive-failure-seam "this macveil binary has no fault seam; build it with 'cargo build --features lab-faults'"
    exit
fi
# IFF_UP is bit 0 of the interface flags.
is_up() {
    [ $(($(cat "/sys/class/net/$1/flags") & 1)) = 1 ]
}

write_daemon_config 'wifi.cloned-mac-address=stable-ssid'
export MACVEIL_LAB_FAIL_SET_ADDRESS=wlan0
started=0
start_daemon daemon && started=1
unset MACVEIL_LAB_FAIL_SET_ADDRESS
if [ "$started" = 0 ]; then
    fail drive-failure-daemon "the daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
    exit
fi
if ! start_capture; then
    fail drive-failure-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
start_enabled_station "$network_a"
if ! wait_until 10 "grep -q 'chooses among the networks' '$LAB_LOGS/daemon.log'"; then
    fail drive-failure-daemon "the daemon did not begin to drive wlan0 within 10 s: $(grep wlan0 "$LAB_LOGS/daemon.log" | tail -n 4 | tr '\n' ' ')"
    exit
fi
before="$(current_address wlan0)"
if ! start_access_point open "$network_a"; then
    fail drive-failure-capture "hostapd did not report AP-ENABLED for $network_a within 15 s"
    exit
fi

# The daemon scans again 5 s after it found no network in range.
if wait_until 20 "grep -q 'could not set the address' '$LAB_LOGS/daemon.log'"; then
    if grep 'could not set the address' "$LAB_LOGS/daemon.log" | grep -q 'stays down'; then
        pass drive-failure-reported
    else
        fail drive-failure-reported "the error does not say that the radio stays down: $(grep 'could not set the address' "$LAB_LOGS/daemon.log" | head -n 1)"
    fi
else
    fail drive-failure-reported "the daemon reported no failed address change within 20 s: $(grep wlan0 "$LAB_LOGS/daemon.log" | grep -v ', action ' | tail -n 4 | tr '\n' ' ')"
    exit
fi
failures_before="$(grep -c 'could not set the address' "$LAB_LOGS/daemon.log")"
if is_up wlan0; then
    fail drive-failure-radio-down "wlan0 is up right after the failed change"
else
    pass drive-failure-radio-down
fi

# The daemon tries the same network again after 10 s, without a scan.
wait_until 14 "[ \$(grep -c 'could not set the address' '$LAB_LOGS/daemon.log') -gt $failures_before ]"
retries="$(($(grep -c 'could not set the address' "$LAB_LOGS/daemon.log") - failures_before))"
if is_up wlan0; then
    fail drive-failure-radio-stays-down "wlan0 came back up after the daemon's retry ($retries retries)"
elif [ "$retries" = 0 ]; then
    fail drive-failure-radio-stays-down "the daemon did not try again within 14 s: $(grep wlan0 "$LAB_LOGS/daemon.log" | grep -v ', action ' | tail -n 3 | tr '\n' ' ')"
else
    pass drive-failure-radio-stays-down
fi
state="$(wpa status | sed -n 's/^wpa_state=//p')"
if [ "$state" = INTERFACE_DISABLED ]; then
    pass drive-failure-supplicant-idle
else
    fail drive-failure-supplicant-idle "wpa_supplicant is in state $state, expected INTERFACE_DISABLED"
fi
if [ "$(current_address wlan0)" = "$before" ]; then
    pass drive-failure-address-unchanged
else
    fail drive-failure-address-unchanged "wlan0 has $(current_address wlan0), before the failure $before"
fi

stations="$(connected_stations | tr '\n' ' ')"
if ! stop_capture; then
    fail drive-failure-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi
joins="$(grep -c -e ' Authentication (' -e 'Assoc Request' "$LAB_LOGS/capture.log")"
if [ -n "$stations" ] || [ "$joins" != 0 ]; then
    fail drive-failure-no-association "hostapd reported stations [$stations] and the capture holds $joins authentication or association frames"
else
    pass drive-failure-no-association
fi
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass drive-failure-no-permanent-address
else
    fail drive-failure-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi
