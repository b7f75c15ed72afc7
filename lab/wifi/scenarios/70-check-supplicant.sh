#!/bin/sh
# `macveil wifi check` reads the running wpa_supplicant over its control socket and flags what it
# exposes. Three set-ups, one after another on the same radios:
# 1. Randomization off, the default: wpa_supplicant starts on the permanent address and connects
#    by itself. The check must flag the permanent address and the WPS UUID derived from it, and
#    `macveil check` the same configuration file (mac_addr, preassoc_mac_addr and uuid unset).
# 2. preassoc_mac_addr=1 with mac_addr=0: the check must flag that the supplicant puts its start
#    address back before each association, and `macveil wifi connect` must reject it
#    and change nothing.
# 3. macveil's set-up: wlan0 gets a random address before wpa_supplicant starts, P2P is off, scan
#    privacy is on and macveil connects. The check must find nothing.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-check
permanent="$(permanent_address wlan0)"

# Runs `macveil wifi check wlan0 --json` and sets check_status and check_output (without white
# space).
run_check() {
    macveil wifi check wlan0 --json >"$LAB_LOGS/macveil-check-$1.log" 2>&1
    check_status=$?
    check_output="$(tr -d ' \t\n' <"$LAB_LOGS/macveil-check-$1.log")"
}

# Prints whether the last check reported the finding $1 with the severity $2.
has_finding() {
    echo "$check_output" | grep -q "\"code\":\"$1\",\"severity\":\"$2\""
}

if ! start_access_point open "$ssid"; then
    fail check-setup "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi

# 1. Randomization off.
if ! start_station open "$ssid"; then
    fail check-setup "wpa_supplicant on wlan0 did not report CTRL-EVENT-CONNECTED within 30 s"
    exit
fi
run_check off
if [ "$check_status" != 1 ]; then
    fail check-flags-permanent-address "macveil wifi check exited with status $check_status, expected 1: $check_output"
elif has_finding wpa-live-permanent-address high; then
    pass check-flags-permanent-address
else
    fail check-flags-permanent-address "no high wpa-live-permanent-address finding: $check_output"
fi
if has_finding wpa-live-wps-uuid-hardware high; then
    pass check-flags-wps-uuid
else
    fail check-flags-wps-uuid "no high wpa-live-wps-uuid-hardware finding: $check_output"
fi

# `macveil check` reads the supplicant's configuration file where Debian keeps it.
mkdir -p /etc/wpa_supplicant
cp "$LAB_LOGS/wpa_supplicant.conf" /etc/wpa_supplicant/wpa_supplicant.conf
macveil check --json >"$LAB_LOGS/macveil-check-files.log" 2>&1
files_status=$?
files_output="$(tr -d ' \t\n' <"$LAB_LOGS/macveil-check-files.log")"
missing=""
for code in wpa-mac-addr wpa-preassoc-mac-addr wps-uuid; do
    if ! echo "$files_output" | grep -q "\"code\":\"$code\""; then
        missing="$missing $code"
    fi
done
if [ "$files_status" != 1 ]; then
    fail check-config-file "macveil check exited with status $files_status, expected 1: $(head -c 600 "$LAB_LOGS/macveil-check-files.log")"
elif [ -n "$missing" ]; then
    fail check-config-file "macveil check did not report$missing for /etc/wpa_supplicant/wpa_supplicant.conf: $(head -c 600 "$LAB_LOGS/macveil-check-files.log")"
else
    pass check-config-file
fi
rm /etc/wpa_supplicant/wpa_supplicant.conf
stop_background wpa_supplicant

# 2. The supplicant's own pre-association address with mac_addr=0.
if ! start_idle_station "preassoc_mac_addr=1" "$ssid"; then
    fail check-setup "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi
run_check preassoc
if has_finding wpa-live-restores-start-address high; then
    pass check-flags-restore
else
    fail check-flags-restore "no high wpa-live-restores-start-address finding: $check_output"
fi
before="$(current_address wlan0)"
macveil_connect --ssid "$ssid" --policy random
if [ "$connect_status" != 2 ]; then
    fail check-connect-rejected "macveil wifi connect exited with status $connect_status, expected 2: $(connect_output)"
elif ! grep -q 'preassoc_mac_addr=1' "$connect_log"; then
    fail check-connect-rejected "the error does not name preassoc_mac_addr=1: $(connect_output)"
elif [ "$(current_address wlan0)" != "$before" ]; then
    fail check-connect-rejected "wlan0 changed from $before to $(current_address wlan0) although the connection was rejected"
elif [ -n "$(wpa status | grep '^wpa_state=COMPLETED')" ]; then
    fail check-connect-rejected "wpa_supplicant connected although macveil rejected it"
else
    pass check-connect-rejected
fi
stop_background wpa_supplicant

# 3. macveil's set-up.
ip link set wlan0 down
if ! macveil set wlan0 --random >"$LAB_LOGS/macveil-set.log" 2>&1; then
    fail check-setup "macveil set wlan0 --random failed: $(head -n 3 "$LAB_LOGS/macveil-set.log" | tr '\n' ' ')"
    exit
fi
if ! start_idle_station "p2p_disabled=1" "$ssid"; then
    fail check-setup "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi
macveil wifi scan-privacy wlan0 on >"$LAB_LOGS/macveil-scan-privacy.log" 2>&1
if ! macveil_connect --ssid "$ssid" --policy random; then
    fail check-setup "macveil wifi connect exited with status $connect_status: $(connect_output)"
    exit
fi
run_check clean
if [ "$check_status" = 0 ] && echo "$check_output" | grep -q '"findings":\[\]'; then
    pass check-clean-after-macveil
else
    fail check-clean-after-macveil "macveil wifi check exited with status $check_status: $check_output"
fi
