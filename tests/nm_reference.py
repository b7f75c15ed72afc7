#!/usr/bin/env python3
"""Independent reference for the expected values in the stable-address tests.

It re-implements, with nothing but hashlib, the NetworkManager derivation that macveil's Rust code
implements, so that the Rust tests compare against values computed a second, separate way:

- the v2 host id: SHA-256 of "<file length> ", the key file bytes and the machine id as
  32 lower-case hex digits (left out when absent);
- the stable id of a template (only the placeholders these cases use);
- the stable address: SHA-256 of type byte, big-endian u32 host id length, host id,
  interface name + NUL, stable id + NUL; bytes 0..6, locally administered bit set, group bit
  cleared (no mask in these cases);
- macveil's per-link identity, as defined in src/generate/stable.rs.

Case "netplan-stable-ssid" is not only computed: NetworkManager itself produced 5e:ba:fe:fd:89:03
for it in netplan's integration test tests/integration/wifi.py
(test_wifi_cloned_macaddress_stable_ssid, canonical/netplan), which writes this machine id and
secret key, sets wifi.cloned-mac-address=stable-ssid and connects to SSID "fake net". That test
picks wlan0 or wlan1 at random for the client; the recorded address matches wlan0.

Run: python3 tests/nm_reference.py
"""

import base64
import hashlib
import struct

NETPLAN_KEY = b"nm-v2:hnIHoHp4p9kaEWU5/+dO+gFREirN1AsMoO1MPaoYxCc="
NETPLAN_MACHINE_ID = "ee7ac3602b6306061bd984a41eb1c045"

UUID, STABLE_ID, GENERATED, RANDOM = 0, 1, 2, 3


def host_id_v2(key, machine_id):
    data = str(len(key)).encode() + b" " + key
    if machine_id is not None:
        data += machine_id.lower().encode()
    return hashlib.sha256(data).digest()


def generated_complete(expansion):
    digest = hashlib.sha1(expansion.encode()).digest()
    return base64.b64encode(digest).decode().rstrip("=")


def substituted(pattern, value):
    return "%s=%d{%s}" % (pattern, len(value.encode()), value)


def stable_address(kind, host_id, ifname, stable_id):
    data = bytes([kind]) + struct.pack(">I", len(host_id)) + host_id
    data += ifname.encode() + b"\0" + stable_id.encode() + b"\0"
    octets = bytearray(hashlib.sha256(data).digest()[:6])
    octets[0] |= 0x02
    octets[0] &= 0xFE
    return ":".join("%02x" % b for b in octets)


def link_identity(host_id, permanent=None, name=None):
    data = b"macveil link identity v1\0" + struct.pack(">I", len(host_id)) + host_id
    if permanent is not None:
        data += b"permanent\0" + bytes(int(part, 16) for part in permanent.split(":"))
    else:
        data += b"name\0" + name.encode()
    raw = bytearray(hashlib.sha256(data).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return "-".join([text[0:8], text[8:12], text[12:16], text[16:20], text[20:32]])


def main():
    host = host_id_v2(NETPLAN_KEY, NETPLAN_MACHINE_ID)
    host_no_machine_id = host_id_v2(NETPLAN_KEY, None)
    connection = "5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9d"
    boot = "a1b2c3d4-0000-4000-8000-0123456789ab"

    cases = [
        (
            "netplan-stable-ssid",
            stable_address(
                GENERATED,
                host,
                "wlan0",
                generated_complete(substituted("${NETWORK_SSID}", "s:fake net")),
            ),
        ),
        ("v2-uuid-eth0", stable_address(UUID, host, "eth0", connection)),
        (
            "v2-connection-boot-eth0",
            stable_address(
                GENERATED,
                host,
                "eth0",
                generated_complete(
                    substituted("${CONNECTION}", connection) + "/" + substituted("${BOOT}", boot)
                ),
            ),
        ),
        ("v2-no-machine-id-uuid-eth0", stable_address(UUID, host_no_machine_id, "eth0", connection)),
    ]

    identity = link_identity(host, permanent="3c:22:fb:01:02:03")
    cases.append(("v2-link-identity-3c:22:fb:01:02:03", identity))
    cases.append(("v2-link-identity-uuid-eth0", stable_address(UUID, host, "eth0", identity)))
    identity_by_name = link_identity(host, name="eth0")
    cases.append(("v2-link-identity-name-eth0", identity_by_name))
    cases.append(("v2-link-identity-name-uuid-eth0", stable_address(UUID, host, "eth0", identity_by_name)))

    raw_host = b"0123456789abcdef"
    cases.append(("raw-link-identity-3c:22:fb:01:02:03", link_identity(raw_host, permanent="3c:22:fb:01:02:03")))
    cases.append(("raw-link-identity-name-wlan0", link_identity(raw_host, name="wlan0")))

    print("host id (v2, machine id): " + host.hex())
    print("host id (v2, no machine id): " + host_no_machine_id.hex())
    for name, value in cases:
        print("%s\t%s" % (name, value))


if __name__ == "__main__":
    main()
