"""Who decides the VTEP's MAC: udev `.link` files (MACAddressPolicy) and NetworkManager (seed 000).

Cloned VMs without `99-default.link` (or with `MACAddressPolicy=persistent` on systemd >= 242 and a
cloned machine-id) give every node the same flannel.1 MAC. udev applies only the FIRST `.link` file, in
file-name order across /etc, /run, /usr/local/lib, /usr/lib, /lib (same name: earlier directory wins;
a symlink to /dev/null masks), whose [Match] selects the device.
"""

from __future__ import annotations

import fnmatch
import re

from vxlan_conformance.model.records import LinkFile, MacPolicy

_DEFAULT_LINK_PATHS = ("/usr/lib/systemd/network/99-default.link", "/lib/systemd/network/99-default.link")
# [Match] keys that describe the node, not the device: true on the node the file was written for.
_NODE_WIDE = {"Host", "Virtualization", "KernelCommandLine", "KernelVersion", "Architecture", "Firmware",
              "Credential"}


def parse_link_files(text: str) -> list[tuple[str, bool, str]]:
    """The script's dump (`=== <path>` or `=== masked <path>` then the content) -> (path, masked, content)."""
    files: list[tuple[str, bool, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("=== "):
            head = line[4:].strip()
            masked = head.startswith("masked ")
            files.append((head.removeprefix("masked "), masked, []))
        elif files:
            files[-1][2].append(line)
    return [(path, masked, "\n".join(lines)) for path, masked, lines in files]


def effective_order(files: list[tuple[str, bool, str]]) -> list[tuple[str, bool, str]]:
    """Apply udev's override rules: one file per name (first directory wins), sorted by name."""
    by_name: dict[str, tuple[str, bool, str]] = {}
    for path, masked, content in files:
        by_name.setdefault(path.rsplit("/", 1)[-1], (path, masked, content))
    return [by_name[name] for name in sorted(by_name)]


def ini_sections(content: str) -> dict[str, list[tuple[str, str]]]:
    """systemd unit-style file -> {section: [(key, value), ...]} keeping repeats in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in content.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
    return sections


def link_file_matches(match: list[tuple[str, str]], name: str, kind: str | None, mac: str | None) -> bool:
    """Does a [Match] section select this virtual device? (no Path, no permanent MAC, no bus properties)"""
    lists: dict[str, list[str]] = {}
    for key, value in match:
        lists[key] = lists.get(key, []) + value.split() if value else []
    properties = {"INTERFACE": name, "DEVTYPE": kind or "", "ID_NET_DRIVER": kind or ""}
    for key, patterns in lists.items():
        if not patterns or key in _NODE_WIDE:
            continue
        invert = patterns[0].startswith("!")
        patterns = [patterns[0][1:], *patterns[1:]] if invert else patterns
        if key == "OriginalName":
            hit = any(fnmatch.fnmatchcase(name, p) for p in patterns)
        elif key in ("Type", "Kind", "Driver"):
            hit = kind is not None and any(fnmatch.fnmatchcase(kind, p) for p in patterns)
        elif key == "MACAddress":
            hit = mac is not None and mac.lower() in (p.lower() for p in patterns)
        elif key == "Property":
            hit = all(_property_matches(p, properties) for p in patterns)
        else:  # Path, PermanentMACAddress and unknown keys: a virtual device has none of these
            hit = False
        if hit == invert:
            return False
    return True


def _property_matches(pattern: str, properties: dict[str, str]) -> bool:
    key, _, value = pattern.partition("=")
    return key in properties and fnmatch.fnmatchcase(properties[key], value)


def parse_nmcli_states(text: str) -> dict[str, str]:
    """`nmcli -t -f DEVICE,STATE device` -> {device: state}; `\\:` escapes a colon inside a field.

    >>> parse_nmcli_states("eth0:connected\\nflannel.1:unmanaged")
    {'eth0': 'connected', 'flannel.1': 'unmanaged'}
    """
    states = {}
    for line in text.splitlines():
        fields = [f.replace("\\:", ":").replace("\\\\", "\\") for f in re.split(r"(?<!\\):", line)]
        if len(fields) == 2:
            states[fields[0]] = fields[1]
    return states


def parse_systemd_version(text: str) -> int | None:
    """`udevadm --version` ("252" or "252.38-1~deb12u1") -> 252."""
    match = re.match(r"\s*(\d+)", text)
    return int(match.group(1)) if match else None


def mac_policy(
    link_dump: str | None, name: str, kind: str | None, mac: str | None,
    nmcli: str | None = None, udevadm: str | None = None,
) -> MacPolicy:
    """Everything that decides the device's MAC, from the script's link-file dump, nmcli and udevadm."""
    policy = MacPolicy(systemd_version=parse_systemd_version(udevadm) if udevadm is not None else None)
    if link_dump is not None:
        ordered = effective_order(parse_link_files(link_dump))
        for path, masked, content in ordered:
            sections = ini_sections(content)
            link_values = dict(sections.get("Link", []))
            matches = not masked and link_file_matches(sections.get("Match", []), name, kind, mac)
            entry = LinkFile(path=path, matches_device=matches, mac_address_policy=link_values.get("MACAddressPolicy"),
                             masked=masked)
            policy.link_files.append(entry)
            if matches and policy.applied_file is None:
                policy.applied_file, policy.applied_policy = path, entry.mac_address_policy
        default = next((f for f in policy.link_files if f.path in _DEFAULT_LINK_PATHS and not f.masked), None)
        policy.default_link_exists = default is not None
        policy.default_link_policy = default.mac_address_policy if default else None
    if nmcli is not None:
        state = parse_nmcli_states(nmcli).get(name)
        policy.nm_state = state
        policy.nm_managed = None if state is None else state != "unmanaged"
    return policy
