#!/bin/sh
# The daemon is reloaded and restarted while it drives. It runs with stable-ssid before a
# wpa_supplicant with two enabled networks, A and B, of which only A is in range. Three SIGHUPs
# arrive while the daemon makes the first connection, which must still use A's address. The
# daemon is then stopped with SIGTERM one second after the supplicant restarted, in the middle
# of a connection, and started again. It stops once more while connected, as for a package
# upgrade. Then A's access point goes away, B's comes up, and the daemon starts again. It must
# connect to B with B's address, and B must never see an address used while A was in range
# (frames addressed to A's BSSID aside).

# shellcheck source=SCRIPTDIR/../guest/lib.sh
. /lab/lib.sh

start_two_networks reload || exit

daemon_tail() {
    grep wlan0 "$LAB_LOGS/$1.log" | tail -n 5 | tr '\n' ' '
}

# SIGHUP while the first connection is driven.
start_enabled_station "$network_a" "$network_b"
for _ in 1 2 3; do
    sleep 0.7
    # shellcheck disable=SC2154 # start_background sets daemon_pid
    kill -HUP "$daemon_pid"
done
if ! wait_for_connection "$network_a" 1 30 daemon; then
    fail reload-sighup-connects "with three SIGHUPs during the drive, the daemon reported no connection to $network_a within 30 s: $(daemon_tail daemon)"
    exit
elif [ "$address" != "$address_a" ] || [ "$(current_address wlan0)" != "$address_a" ]; then
    fail reload-sighup-connects "the daemon connected to $network_a with $address, and wlan0 has $(current_address wlan0); expected $address_a"
else
    pass reload-sighup-connects
fi

# SIGTERM in the middle of a connection: the supplicant restarts, and the daemon stops while
# it drives the new supplicant.
stop_background wpa_supplicant
start_enabled_station "$network_a" "$network_b"
sleep 1
kill -TERM "$daemon_pid"
stop_waited=0
while kill -0 "$daemon_pid" 2>/dev/null && [ "$stop_waited" -lt 25 ]; do
    sleep 0.2
    stop_waited=$((stop_waited + 1))
done
if kill -0 "$daemon_pid" 2>/dev/null; then
    fail reload-sigterm-stops "the daemon still ran 5 s after SIGTERM"
else
    wait "$daemon_pid"
    stop_status=$?
    if [ "$stop_status" = 0 ]; then
        pass reload-sigterm-stops
    else
        fail reload-sigterm-stops "the daemon exited with status $stop_status after SIGTERM: $(tail -n 3 "$LAB_LOGS/daemon.log" | tr '\n' ' ')"
    fi
fi
after_stop="$(current_address wlan0)"

if ! start_daemon daemon_2; then
    fail reload-daemon "the second daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon_2.log" | tr '\n' ' ')"
    exit
fi
if ! wait_for_connection "$network_a" 1 30 daemon_2; then
    fail reload-restart-connects "the restarted daemon reported no connection to $network_a within 30 s (wlan0 had $after_stop when the first stopped): $(daemon_tail daemon_2)"
    exit
elif [ "$address" != "$address_a" ]; then
    fail reload-restart-connects "the restarted daemon connected to $network_a with $address, expected $address_a"
else
    pass reload-restart-connects
fi

# The daemon stops while connected to A, as for a package upgrade. A's access point goes away,
# B's comes up, and then the daemon starts again.
# shellcheck disable=SC2154 # start_background sets daemon_2_pid
kill -TERM "$daemon_2_pid"
wait "$daemon_2_pid"
stop_background hostapd
set_access_point_address 02:00:00:00:01:0b
if ! mark_capture "$switch_mark"; then
    fail reload-capture "the switch mark did not reach the capture within 10 s"
    exit
fi
if ! start_access_point open "$network_b"; then
    fail reload-capture "hostapd did not report AP-ENABLED for $network_b within 15 s"
    exit
fi
if ! start_daemon daemon_3; then
    fail reload-daemon "the third daemon did not report its start within 10 s: $(tail -n 5 "$LAB_LOGS/daemon_3.log" | tr '\n' ' ')"
    exit
fi
# B is in range when the daemon starts, so it needs one scan and one connection.
if ! wait_for_connection "$network_b" 1 20 daemon_3; then
    fail reload-restart-follows-network "the daemon, restarted after a connection to $network_a, reported no connection to $network_b within 20 s: $(grep 'chooses among' "$LAB_LOGS/daemon_3.log" | tail -n 1) $(grep 'none of the networks' "$LAB_LOGS/daemon_3.log" | tail -n 1)"
elif [ "$address" != "$address_b" ]; then
    fail reload-restart-follows-network "the daemon connected to $network_b with $address, expected $address_b"
else
    pass reload-restart-follows-network
fi

if ! stop_capture; then
    fail reload-capture "the end marker did not reach the capture on hwsim0 within 10 s, so frames may be missing"
    exit
fi

sources_while_in_range "$bssid_a" "$switch_mark" >"$LAB_LOGS/sources-a"
# Frames addressed to A's BSSID are the supplicant's attempts to regain A: they are not sent to
# B, although B can hear them.
frames_around_mark after "$switch_mark" | frames_not_to "$bssid_a" >"$LAB_LOGS/capture-b.log"
echo "$address_a" >>"$LAB_LOGS/sources-a"
linking="$(addresses_named_in "$LAB_LOGS/sources-a" "$LAB_LOGS/capture-b.log")"
if [ -n "$linking" ]; then
    fail reload-b-never-sees-a "after $network_b came up the station sent with addresses used while $network_a was in range (A's address is $address_a):$linking"
else
    pass reload-b-never-sees-a
fi

leaks="$(count_frames_with_address "$permanent")"
if [ "$leaks" = 0 ]; then
    pass reload-no-permanent-address
else
    fail reload-no-permanent-address "$leaks captured frames carry the permanent address $permanent"
fi
