"""Parsers for the outputs of node tools (iproute2, bridge, ethtool, netfilter, procfs, systemd).

Each module turns one tool's stdout into the records of `vxlan_conformance.model.records`. Parsers accept both the
JSON (`ip -j`) and the text form where the tool has both, because CentOS 7's iproute 3.10 has no JSON.
They raise on output they cannot understand; `collect.facts.parse` catches that per section and records a note.
"""
