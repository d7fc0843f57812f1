"""`ethtool -k` (and the "Actual changes:" listing of `ethtool -K`): offload feature states.

TX checksum offload on the VTEP is half of the `--random-fully` outer-checksum bug (seed 004), so the
exact values ("on", "off [fixed]", "off [requested on]") are kept verbatim for evidence.
"""

from __future__ import annotations

import re

_FEATURE = re.compile(r"^\s*([A-Za-z0-9][\w-]*):\s*(\S.*?)\s*$")


def parse_features(text: str) -> dict[str, str]:
    """Feature name -> state; header lines ("Features for X:", "Actual changes:") are skipped.

    >>> parse_features("Features for flannel.1:\\n\\ttx-checksum-ip-generic: on\\ntx-checksum-ipv4:off[fixed]")
    {'tx-checksum-ip-generic': 'on', 'tx-checksum-ipv4': 'off [fixed]'}
    """
    features = {}
    for line in text.splitlines():
        match = _FEATURE.match(line)
        if match:
            name, state = match.groups()
            features[name] = re.sub(r"\s*\[", " [", state)
    return features


def feature_on(state: str | None) -> bool | None:
    """True for "on", "on [fixed]"...; None when the feature is unknown.

    >>> feature_on("off [requested on]"), feature_on("on [fixed]"), feature_on(None)
    (False, True, None)
    """
    return None if state is None else state.split()[0] == "on"
