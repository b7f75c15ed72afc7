#!/bin/sh
# lab-boots: 2
# `stable`: the address comes from the secret key and the card, so it is the same at every
# reconnection and, with the same key, after a reboot. With connection.stable-id
# ${CONNECTION}/${BOOT} it stays the same within a boot and changes at the next one. Both boots
# of the run get the same key file (/var/lib/macveil/secret_key) and a new kernel boot id.
# wpa_supplicant starts on the permanent address, and no frame may carry it.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

ssid=macveil-lab-stable
per_boot='${CONNECTION}/${BOOT}'
permanent="$(permanent_address wlan0)"

if ! start_capture; then
    fail stable-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_access_point open "$ssid"; then
    fail stable-capture "hostapd did not report AP-ENABLED on wlan1 within 15 s"
    exit
fi
if ! start_idle_station "" "$ssid"; then
    fail stable-station "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi
if ! macveil wifi scan-privacy wlan0 on >"$LAB_LOGS/macveil-scan-privacy.log" 2>&1; then
    fail stable-scan-privacy "macveil wifi scan-privacy wlan0 on failed: $(head -n 3 "$LAB_LOGS/macveil-scan-privacy.log" | tr '\n' ' ')"
    exit
fi

# Connects twice with the policy options "$@" and sets "twice" to the two addresses, or fails
# the check $1 and returns 1.
connect_twice() {
    check="$1"
    shift
    twice=""
    for attempt in 1 2; do
        if ! macveil_connect --ssid "$ssid" "$@"; then
            fail "$check" "connection $attempt: macveil wifi connect $* exited with status $connect_status: $(connect_output)"
            return 1
        fi
        if ! wait_until 5 "[ \$(station_connections $connected_address) -ge $attempt ]"; then
            fail "$check" "connection $attempt: hostapd did not report $connected_address as connected"
            return 1
        fi
        twice="$twice $connected_address"
    done
}

if connect_twice "stable-reconnect-boot-$LAB_BOOT" --policy stable; then
    set -- $twice
    stable="$1"
    if [ "$1" != "$2" ]; then
        fail "stable-reconnect-boot-$LAB_BOOT" "the two connections used $1 and $2"
    elif [ "$1" = "$permanent" ]; then
        fail "stable-reconnect-boot-$LAB_BOOT" "the stable address is the permanent address $permanent"
    else
        pass "stable-reconnect-boot-$LAB_BOOT"
    fi
fi

if connect_twice "stable-per-boot-reconnect-boot-$LAB_BOOT" --policy stable --stable-id "$per_boot"; then
    set -- $twice
    per_boot_address="$1"
    if [ "$1" != "$2" ]; then
        fail "stable-per-boot-reconnect-boot-$LAB_BOOT" "the two connections used $1 and $2 within one boot"
    elif [ "$1" = "$stable" ] || [ "$1" = "$permanent" ]; then
        fail "stable-per-boot-reconnect-boot-$LAB_BOOT" "the per-boot address $1 equals the stable address $stable or the permanent address"
    else
        pass "stable-per-boot-reconnect-boot-$LAB_BOOT"
    fi
fi

if ! stop_capture; then
    fail stable-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass "stable-no-permanent-address-boot-$LAB_BOOT"
else
    fail "stable-no-permanent-address-boot-$LAB_BOOT" "$leaks captured frames carry the permanent address $permanent"
fi

if [ "$LAB_BOOT" = 1 ]; then
    record stable "$stable"
    record per-boot "$per_boot_address"
    record boot-id "$(cat /proc/sys/kernel/random/boot_id)"
    exit
fi

first_stable="$(recorded stable)"
first_per_boot="$(recorded per-boot)"
first_boot_id="$(recorded boot-id)"
if [ "$first_boot_id" = "$(cat /proc/sys/kernel/random/boot_id)" ]; then
    fail stable-second-boot "the boot id is the same as in the first boot ($first_boot_id)"
fi
if [ -z "$first_stable" ]; then
    fail stable-same-after-reboot "the first boot recorded no stable address"
elif [ "$stable" != "$first_stable" ]; then
    fail stable-same-after-reboot "the stable address is $stable, the first boot's was $first_stable"
else
    pass stable-same-after-reboot
fi
if [ -z "$first_per_boot" ]; then
    fail stable-per-boot-changes-after-reboot "the first boot recorded no per-boot address"
elif [ "$per_boot_address" = "$first_per_boot" ]; then
    fail stable-per-boot-changes-after-reboot "the address for $per_boot is $per_boot_address in both boots"
else
    pass stable-per-boot-changes-after-reboot
fi
