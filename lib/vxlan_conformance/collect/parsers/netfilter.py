"""NAT facts from `iptables-save` and `nft list ruleset` (the seed-004 63-second bug, kubernetes#88986).

The bug bites when a MASQUERADE rule has `--random-fully` and kube-proxy lacks the k8s#92035 fix, which
makes KUBE-POSTROUTING return early for unmarked packets (`! --mark 0x4000/0x4000 -j RETURN`) and clear the
mark with an XOR (iptables-save prints `--xor-mark 0x4000` as `--set-xmark 0x4000/0x0`). Flannel's own fix
is a `--mark 0x4000/0x4000 -j RETURN` at the top of FLANNEL-POSTRTG. nft rulesets (iptables-nft
translations, kube-proxy's nftables mode) spell the same rules as `meta mark & 0x00004000 ...`.
"""

from __future__ import annotations

import re

from vxlan_conformance.model.records import NatFacts

_NFT_MARK = r"meta mark & 0x0*4000"
_NFT_UNMARKED_RETURN = re.compile(rf"{_NFT_MARK} (?:!= 0x0*4000|== 0x0+)\b.*\breturn\b")
_NFT_MARKED_RETURN = re.compile(rf"{_NFT_MARK} == 0x0*4000\b.*\breturn\b")
_NFT_XOR = re.compile(r"meta mark set (?:meta )?mark (?:xor|\^) 0x0*4000\b")
_NFT_CHAIN = re.compile(r"^\s*chain\s+(\S+)\s*\{")
_NFT_TABLE = re.compile(r"^\s*table\s+\S+\s+(\S+)\s*\{")


def parse_iptables_save(text: str) -> NatFacts:
    """Facts from `iptables-save` output (all tables or `-t nat`)."""
    rules = [line.strip() for line in text.splitlines() if line.startswith("-A ")]
    masquerade = [rule for rule in rules if "-j MASQUERADE" in rule]
    kube = [rule for rule in rules if rule.startswith("-A KUBE-POSTROUTING ")]
    kube_return = any("! --mark 0x4000/0x4000" in rule and "-j RETURN" in rule for rule in kube)
    kube_xor = any("--xor-mark 0x4000" in rule or "--set-xmark 0x4000/0x0" in rule for rule in kube)
    flannel_return = any(
        rule.startswith("-A FLANNEL-POSTRTG ")
        and re.search(r"(?<!! )--mark 0x4000/0x4000", rule) is not None
        and "-j RETURN" in rule
        for rule in rules
    )
    return NatFacts(
        tool="iptables",
        readable=True,
        random_fully=any("--random-fully" in rule for rule in masquerade),
        kube_mark_return=kube_return and kube_xor,
        flannel_mark_return=flannel_return,
        masquerade_rules=masquerade,
    )


def parse_nft_ruleset(text: str) -> NatFacts:
    """Facts from `nft list ruleset`; masquerade rules are reported as `<table> <chain>: <rule>`."""
    chains: dict[tuple[str, str], list[str]] = {}
    table = chain = ""
    for line in text.splitlines():
        if match := _NFT_TABLE.match(line):
            table, chain = match.group(1), ""
        elif match := _NFT_CHAIN.match(line):
            chain = match.group(1)
            chains.setdefault((table, chain), [])
        elif chain and line.strip() not in ("", "}") and not line.strip().startswith("type "):
            chains[(table, chain)].append(" ".join(line.split()))
    masquerade = [f"{t} {c}: {rule}" for (t, c), rules in chains.items() for rule in rules if "masquerade" in rule]
    kube_fixed = any(
        any(_NFT_UNMARKED_RETURN.search(rule) for rule in rules) and any(_NFT_XOR.search(rule) for rule in rules)
        for rules in chains.values()
    )
    flannel_fixed = any(
        "flannel" in f"{t} {c}".lower() and any(_NFT_MARKED_RETURN.search(rule) for rule in rules)
        for (t, c), rules in chains.items()
    )
    return NatFacts(
        tool="nft",
        readable=True,
        random_fully=any("fully-random" in rule or "random-fully" in rule for rule in masquerade),
        kube_mark_return=kube_fixed,
        flannel_mark_return=flannel_fixed,
        masquerade_rules=masquerade,
    )


def merge(first: NatFacts, second: NatFacts) -> NatFacts:
    """One view over both tools: a node may hold iptables-nft rules and native nft tables at once."""
    readable = [facts for facts in (first, second) if facts.readable]
    if not readable:
        return first if first.tool != "absent" else second
    return NatFacts(
        tool=readable[0].tool,
        readable=True,
        random_fully=any(f.random_fully for f in readable),
        kube_mark_return=any(f.kube_mark_return for f in readable),
        flannel_mark_return=any(f.flannel_mark_return for f in readable),
        masquerade_rules=[rule for f in readable for rule in f.masquerade_rules],
    )


def port_rules(text: str, port: int) -> list[str]:
    """Rules that name UDP/TCP destination `port` (firewall evidence for UDP_PORT_BLOCKED).

    >>> port_rules("-A INPUT -p udp -m udp --dport 8472 -j DROP\\n-A INPUT --dport 18472 -j DROP", 8472)
    ['-A INPUT -p udp -m udp --dport 8472 -j DROP']
    """
    pattern = re.compile(rf"dports?\b[^;]*?(?<![\d.:-]){port}(?![\d.])")
    return [" ".join(line.split()) for line in text.splitlines() if not line.lstrip().startswith("#")
            and pattern.search(line)]
