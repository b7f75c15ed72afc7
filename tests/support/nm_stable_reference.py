#!/usr/bin/env python3
"""Print the `stable` cloned MAC address NetworkManager derives for an Ethernet profile.

An independent reference for the NetworkManager tests: it checks that the lab hands
NetworkManager the inputs the tests believe it uses (secret key, machine id, boot id,
profile UUID, interface name), separately from macveil's own derivation.

It follows NetworkManager 1.42 (src/core/nm-core-utils.c):
- Host id: a key that starts with "nm-v2:" and is at least 38 bytes long gives SHA-256 of
  "<key length> ", the key bytes and the machine id as 32 lower-case hex digits. Any other
  key is used as it is.
- Stable id: no template gives the profile UUID (type 0). A template without substitution
  is used as it is (type 1). Otherwise each ${CONNECTION}, ${BOOT} and ${DEVICE} is kept and
  followed by "=<byte length>{value}", and the stable id is the unpadded base64 of that
  string's SHA-1 (type 2).
- Address: the first 6 bytes of SHA-256 over the type byte, the host id length as a
  big-endian u32, the host id, the interface name with its NUL and the stable id with its
  NUL. Then the locally administered bit is set, generate-mac-address-mask is applied and
  the group bit is cleared.

With --batch, it reads a JSON array of objects from standard input, each with the keys of the
command-line options ("secret_key", "machine_id", "boot_id", "connection", "ifname", and
optionally "stable_id", "mask", "current"), and prints one address per line, so that a test
starts Python once for all its cases.

Not covered: ${MAC}, ${NETWORK_SSID}, ${RANDOM}, keys shorter than 16 bytes, a missing
machine id, and masks with more than one OUI (NetworkManager picks one at random).
"""

import argparse
import base64
import hashlib
import json
import sys

SUBSTITUTIONS = ("${CONNECTION}", "${BOOT}", "${DEVICE}")


def host_id(key: bytes, machine_id: str) -> bytes:
    if key.startswith(b"nm-v2:") and len(key) >= 38:
        prefix = b"%d " % len(key)
        return hashlib.sha256(prefix + key + machine_id.encode("ascii")).digest()
    return key


def expand_template(template: str, values: dict) -> tuple:
    """Return the expanded template and whether it substituted anything."""
    expanded = []
    substituted = False
    index = 0
    while index < len(template):
        if template[index] != "$":
            expanded.append(template[index])
            index += 1
            continue
        pattern = next((p for p in SUBSTITUTIONS if template.startswith(p, index)), None)
        if pattern is not None:
            value = values[pattern].encode("utf-8")
            expanded.append("%s=%d{%s}" % (pattern, len(value), values[pattern]))
            substituted = True
            index += len(pattern)
        elif template.startswith("$$", index):
            # "$$" is kept verbatim and protects what follows it.
            expanded.append("$$")
            index += 2
        else:
            expanded.append("$")
            index += 1
    return "".join(expanded), substituted


def stable_id(template, uuid: str, boot_id: str, ifname: str) -> tuple:
    """Return (stable-id type, stable id)."""
    if template is None:
        return 0, uuid
    values = {"${CONNECTION}": uuid, "${BOOT}": boot_id, "${DEVICE}": ifname}
    expanded, substituted = expand_template(template, values)
    if not substituted:
        return 1, template
    digest = hashlib.sha1(expanded.encode("utf-8")).digest()
    return 2, base64.b64encode(digest).decode("ascii").rstrip("=")


def parse_mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def stable_address(args) -> str:
    with open(args.secret_key, "rb") as key_file:
        key = key_file.read()
    host = host_id(key, args.machine_id)
    kind, identifier = stable_id(args.stable_id, args.connection, args.boot_id, args.ifname)

    data = bytes([kind]) + len(host).to_bytes(4, "big") + host
    data += args.ifname.encode("utf-8") + b"\0" + identifier.encode("utf-8") + b"\0"
    address = bytearray(hashlib.sha256(data).digest()[:6])
    address[0] |= 0x02

    if args.mask:
        words = args.mask.split()
        mask = parse_mac(words[0])
        if len(words) > 2:
            raise SystemExit("a mask with more than one OUI is random in NetworkManager")
        source = parse_mac(words[1]) if len(words) == 2 else parse_mac(args.current)
        for i in range(6):
            address[i] = (address[i] & ~mask[i] & 0xFF) | (source[i] & mask[i])

    address[0] &= 0xFE
    return ":".join("%02x" % octet for octet in address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", action="store_true", help="read a JSON array of cases from stdin")
    parser.add_argument("--secret-key", help="NetworkManager's secret_key file")
    parser.add_argument("--machine-id", help="32 hex digits")
    parser.add_argument("--boot-id")
    parser.add_argument("--connection", help="profile UUID")
    parser.add_argument("--ifname")
    parser.add_argument("--stable-id", help="connection.stable-id template; unset if omitted")
    parser.add_argument("--mask", help="generate-mac-address-mask")
    parser.add_argument("--current", help="the link's initial address, for a mask without OUI")
    args = parser.parse_args()

    if not args.batch:
        required = ("secret_key", "machine_id", "boot_id", "connection", "ifname")
        missing = [name for name in required if getattr(args, name) is None]
        if missing:
            parser.error("missing --" + ", --".join(name.replace("_", "-") for name in missing))
        print(stable_address(args))
        return

    for case in json.load(sys.stdin):
        fields = {key: None for key in ("stable_id", "mask", "current")}
        fields.update(case)
        print(stable_address(argparse.Namespace(**fields)))


if __name__ == "__main__":
    main()
