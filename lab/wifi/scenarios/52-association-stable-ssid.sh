#!/bin/sh
# lab-boots: 2
# `stable-ssid`: each network gets its own address, derived from the secret key, the card and
# the SSID, and the same one at every connection and after a reboot. The station connects to
# network A, then B, then A again, with the access point on wlan1 changing its SSID in between.
# The second boot, with the same key file, must give A and B the addresses of the first.

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

network_a=macveil-lab-network-a
network_b=macveil-lab-network-b
permanent="$(permanent_address wlan0)"

if ! start_capture; then
    fail stable-ssid-capture "tcpdump did not start listening on hwsim0 within 10 s"
    exit
fi
if ! start_idle_station "" "$network_a" "$network_b"; then
    fail stable-ssid-station "wpa_supplicant on wlan0 did not answer on its control socket within 10 s"
    exit
fi
if ! macveil wifi scan-privacy wlan0 on >"$LAB_LOGS/macveil-scan-privacy.log" 2>&1; then
    fail stable-ssid-scan-privacy "macveil wifi scan-privacy wlan0 on failed: $(head -n 3 "$LAB_LOGS/macveil-scan-privacy.log" | tr '\n' ' ')"
    exit
fi

# Runs the access point for the SSID $1 alone, connects to it with stable-ssid and sets
# "address" to the connection's address. Fails the check $2 and returns 1 on error.
connect_to() {
    stop_background hostapd
    if ! start_access_point open "$1"; then
        fail "$2" "hostapd did not report AP-ENABLED for $1 within 15 s"
        return 1
    fi
    if ! macveil_connect --ssid "$1" --policy stable-ssid; then
        fail "$2" "macveil wifi connect --ssid $1 exited with status $connect_status: $(connect_output)"
        return 1
    fi
    if ! wait_until 5 "[ \$(station_connections $connected_address) -ge 1 ]"; then
        fail "$2" "hostapd for $1 did not report $connected_address as connected"
        return 1
    fi
    address="$connected_address"
}

check="stable-ssid-boot-$LAB_BOOT"
connect_to "$network_a" "$check" || exit
address_a="$address"
connect_to "$network_b" "$check" || exit
address_b="$address"
connect_to "$network_a" "$check" || exit
address_a_again="$address"

if [ "$address_a" = "$address_b" ]; then
    fail stable-ssid-differs-between-networks-boot-$LAB_BOOT "networks A and B both got $address_a"
elif [ "$address_a" = "$permanent" ] || [ "$address_b" = "$permanent" ]; then
    fail stable-ssid-differs-between-networks-boot-$LAB_BOOT "a network got the permanent address $permanent"
else
    pass stable-ssid-differs-between-networks-boot-$LAB_BOOT
fi
if [ "$address_a" = "$address_a_again" ]; then
    pass stable-ssid-same-on-return-boot-$LAB_BOOT
else
    fail stable-ssid-same-on-return-boot-$LAB_BOOT "network A got $address_a, then $address_a_again after B"
fi

if ! stop_capture; then
    fail stable-ssid-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi
association_sources="$(captured_sources 'Assoc Request' | tr '\n' ' ')"
if [ "$association_sources" = "$address_a $address_b $address_a " ]; then
    pass stable-ssid-capture-association-boot-$LAB_BOOT
else
    fail stable-ssid-capture-association-boot-$LAB_BOOT "association requests came from [$association_sources], expected [$address_a $address_b $address_a]"
fi
leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass stable-ssid-no-permanent-address-boot-$LAB_BOOT
else
    fail stable-ssid-no-permanent-address-boot-$LAB_BOOT "$leaks captured frames carry the permanent address $permanent"
fi

if [ "$LAB_BOOT" = 1 ]; then
    record network-a "$address_a"
    record network-b "$address_b"
    exit
fi

for network in a b; do
    first="$(recorded "network-$network")"
    eval "now=\$address_$network"
    if [ -z "$first" ]; then
        fail "stable-ssid-same-after-reboot-$network" "the first boot recorded no address for network $network"
    elif [ "$now" != "$first" ]; then
        fail "stable-ssid-same-after-reboot-$network" "network $network got $now, in the first boot $first"
    else
        pass "stable-ssid-same-after-reboot-$network"
    fi
done
