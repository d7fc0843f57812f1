"""The parts of faults that live outside the VXLAN device: firewalls, offloads, NAT rules, bind mounts.

Each `apply_*` first removes what the lab put there before, so calling it with the current fault set is
both "add a fault" and "clear faults".
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from . import inventory_out, overlay, plan, sshd
from .faults import LAB_USER, SUDO_PASSWORD, SUDO_USER, Desired
from .run import SBIN_PATH, run, run_many
from .state import LabState

TABLE = "vxlabfault"
UNAME = "/usr/bin/uname"
OSRELEASE = "/proc/sys/kernel/osrelease"
PROC_VERSION = "/proc/version"
PYTHON_NAMES = ("python3", "python2", "python")  # and PLATFORM_PYTHON: what collect/facts.py tries
PLATFORM_PYTHON = "/usr/libexec/platform-python"


def bridge_table(instance: int) -> str:
    return f"vxlab{instance}fault"


def apply_blocked(state: LabState, want: Desired) -> None:
    """Drop VXLAN in the network (root-ns bridge), like a security group: the receiver sees nothing.
    A black-holed node loses every packet to and from its address, established SSH sessions included,
    like a node whose network died under a running suite."""
    table = bridge_table(state.instance)
    run(["nft", "delete", "table", "bridge", table], check=False)
    if not want.blocked and not want.blackholed:
        return
    rules = []
    for saddr, daddr in want.blocked:
        match = f"ip saddr {saddr} " if saddr else ""
        rules.append(f"    {match}ip daddr {daddr} udp dport {state.port} counter drop")
    holes = [f"    ip {side} {address} counter drop" for address in want.blackholed for side in ("saddr", "daddr")]
    rules.extend(holes)
    # the runner's own traffic (root namespace, the bridge's local port) passes input/output, not forward
    local = "".join(f"  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;\n"
                    + "\n".join(holes) + "\n  }\n" for hook in ("input", "output") if holes)
    text = (f"table bridge {table} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n"
            + "\n".join(rules) + "\n  }\n" + local + "}\n")
    run(["nft", "-f", "-"], input=text, what="installing the blocked-port rules")


def apply_bad_checksum(state: LabState, want: Desired) -> None:
    """netdev egress on the sender's eth0 rewrites the outer UDP checksum to 0xffff (lab-notes 3d)."""
    run_many([(["ip", "netns", "exec", n.netns, "nft", "delete", "table", "netdev", TABLE], None, n.name)
              for n in state.nodes], check=False)
    jobs = []
    for name, daddrs in want.bad_checksum.items():
        rules = [f"    ip protocol udp {f'ip daddr {d} ' if d else ''}udp dport {state.port} counter "
                 "udp checksum set 0xffff" for d in daddrs]
        text = (f"table netdev {TABLE} {{\n  chain egress {{\n    type filter hook egress device \"eth0\" "
                "priority 0; policy accept;\n" + "\n".join(rules) + "\n  }\n}\n")
        jobs.append((["ip", "netns", "exec", state.node(name).netns, "nft", "-f", "-"], text,
                     f"bad-checksum rules on {name}"))
    run_many(jobs)


FIREWALL_TABLE = "filter"


def firewall_rules(kind: str, port: int, probe_port: int) -> tuple[str, str]:
    """(tool, ruleset) of a node's own host firewall, as each tool writes it in the field.

    iptables: an admin's hardening rule dropping the VXLAN port in INPUT.
    nftables: an `inet filter` input chain that accepts what the admin listed (established, loopback,
      SSH, ICMP) and drops the rest with a counted rule, as in the nftables wiki's simple server ruleset.
    firewalld: the iptables rules firewalld writes (firewalld 0.6, src/firewall/core/ipXtables.py,
      build_default_rules(): INPUT accepts RELATED,ESTABLISHED and lo, jumps to INPUT_direct,
      INPUT_ZONES_SOURCE, INPUT_ZONES, drops INVALID and ends in %%REJECT%% = REJECT --reject-with
      icmp-host-prohibited; build_zone_source_interface_rules() / _zone chains: INPUT_ZONES -g IN_public,
      IN_public -> IN_public_log, IN_public_deny, IN_public_allow, then ACCEPT icmp; the public zone allows
      ssh (and dhcpv6-client, which is IPv6 only): `-p tcp --dport 22 -m conntrack --ctstate NEW,UNTRACKED`.
    firewalld-allow: the same with `firewall-cmd --add-port={port}/udp --add-port={probe_port}/udp`
      (an admin who opened the VXLAN port, and the suite's probe port, as the README asks).
    firewalld-vxlan-only: the same with `firewall-cmd --add-port={port}/udp` only (an admin who opened what
      the CNI's docs ask for): VXLAN passes, the suite's UDP echo to probe_port meets the zone's REJECT.
    """
    if kind == "iptables":
        return "iptables-restore", (f"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                    f"-A INPUT -p udp -m udp --dport {port} -j DROP\nCOMMIT\n")
    if kind == "nftables":
        return "nft", ("table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
                       "    ct state established,related accept\n    ct state invalid drop\n"
                       "    iif lo accept\n    ip protocol icmp accept\n    tcp dport 22 accept\n"
                       "    counter drop\n  }\n}\n")
    allow = ""
    if kind in ("firewalld-allow", "firewalld-vxlan-only"):
        opened = (port, probe_port) if kind == "firewalld-allow" else (port,)
        allow = "".join(f"-A IN_public_allow -p udp -m udp --dport {p} -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT\n"
                        for p in opened)
    chains = ("INPUT_direct", "INPUT_ZONES_SOURCE", "INPUT_ZONES", "IN_public", "IN_public_log", "IN_public_deny",
              "IN_public_allow")
    return "iptables-restore", (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        + "".join(f":{c} - [0:0]\n" for c in chains)
        + "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -i lo -j ACCEPT\n"
        "-A INPUT -j INPUT_direct\n-A INPUT -j INPUT_ZONES_SOURCE\n-A INPUT -j INPUT_ZONES\n"
        "-A INPUT -m conntrack --ctstate INVALID -j DROP\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\n"
        "-A INPUT_ZONES -i eth0 -g IN_public\n-A INPUT_ZONES -g IN_public\n"
        "-A IN_public -j IN_public_log\n-A IN_public -j IN_public_deny\n-A IN_public -j IN_public_allow\n"
        "-A IN_public -p icmp -j ACCEPT\n"
        "-A IN_public_allow -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT\n"
        + allow + "COMMIT\n")


def apply_firewall(state: LabState, want: Desired, previous: dict[str, str]) -> None:
    """`firewall=<kind>`: the node's own host firewall in its network namespace, after its NIC (a capture
    on eth0 still sees the packets it drops). Clearing: an empty filter table / no inet filter table."""
    jobs = []
    for name in sorted(set(previous) | set(want.firewall)):
        netns = state.node(name).netns
        jobs.append((["ip", "netns", "exec", netns, "iptables-restore"],
                     "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
                     f"clearing the firewall on {name}"))
    run_many(jobs)
    run_many([(["ip", "netns", "exec", state.node(name).netns, "nft", "delete", "table", "inet", "filter"], None,
               f"clearing nftables on {name}") for name in sorted(set(previous) | set(want.firewall))], check=False)
    jobs = []
    for name, kind in sorted(want.firewall.items()):
        tool, text = firewall_rules(kind, want.ports.get(name, state.port), inventory_out.PROBE_PORT)
        argv = [tool] if tool == "iptables-restore" else ["nft", "-f", "-"]
        jobs.append((["ip", "netns", "exec", state.node(name).netns, *argv], text, f"{kind} firewall on {name}"))
    run_many(jobs)


def rp_filter_veth(instance: int, name: str) -> str:
    """Root end of the rp-filter fault's second NIC (overlay.destroy waits for it like for eth0's)."""
    return f"vxl{instance}r{plan.node_index(name)}"


def apply_rp_filter(state: LabState, want: Desired, previous: set[str]) -> None:
    """`rp-filter`: a node with a second NIC (eth1, a veth on the same underlay bridge, as a host with two
    NICs in one segment), routes to its peers' addresses that leave by eth1 (an admin's /32 routes: the
    asymmetric path of the field reports) and strict rp_filter (net.ipv4.conf.all and eth0 rp_filter=1, as
    /etc/sysctl.d on RHEL-likes sets it). Its own packets reach the peers through eth1; theirs arrive on
    eth0, whose reverse path is eth1, and the kernel drops them (ip_rcv_finish_core: -EXDEV from
    fib_validate_source counts LINUX_MIB_IPRPFILTER, nstat TcpExtIPReversePathFilter). Clearing removes
    eth1 (its routes go with it) and gives all and eth0 back the values a new namespace inherits: the
    machine's net.ipv4.conf.all.rp_filter and the namespace's default."""
    for name in sorted(previous - want.rp_filter):
        netns = state.node(name).netns
        run(["ip", "-n", netns, "link", "del", "eth1"], check=False)
        host_all = Path("/proc/sys/net/ipv4/conf/all/rp_filter").read_text().strip()
        default = run(["ip", "netns", "exec", netns, "sysctl", "-n", "net.ipv4.conf.default.rp_filter"],
                      what=f"reading rp_filter on {name}").stdout.strip()
        run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", f"net.ipv4.conf.all.rp_filter={host_all}",
             f"net.ipv4.conf.eth0.rp_filter={default}"], what=f"restoring rp_filter on {name}")
    for name in sorted(want.rp_filter - previous):
        node = state.node(name)
        peers = [n for n in state.nodes if n.name != name]
        run(["ip", "link", "add", rp_filter_veth(state.instance, name), "type", "veth", "peer", "name", "eth1",
             "netns", node.netns], what=f"adding eth1 to {name}")
        run(["ip", "link", "set", rp_filter_veth(state.instance, name), "master", plan.bridge_name(state.instance),
             "up"], what=f"plugging {name}'s eth1 into the bridge")
        # tx off as on eth0: veth would otherwise hand over unfinished checksums (lab-notes 1, 3d)
        run(["ip", "netns", "exec", node.netns, "ethtool", "-K", "eth1", "tx", "off"], what=f"ethtool on {name}")
        lines = [f"link set eth1 mtu {want.underlay_mtu.get(name, overlay.ETH_MTU)} up"]
        lines += [f"neigh replace {p.address} lladdr {p.eth_mac} dev eth1 nud permanent" for p in peers]
        lines += [f"route replace {p.address}/32 dev eth1 src {node.address}" for p in peers]
        run(["ip", "-n", node.netns, "-batch", "-"], input="\n".join(lines) + "\n", what=f"routes by eth1 on {name}")
        run(["ip", "netns", "exec", node.netns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1",
             "net.ipv4.conf.eth0.rp_filter=1"], what=f"strict rp_filter on {name}")


def apply_random_fully(state: LabState, want: Desired, previous: set[str]) -> None:
    """kube-proxy's masquerade rule with --random-fully (incident 004); the nodes hold no other NAT rules."""
    flush = "*nat\nCOMMIT\n"
    rules = ("*nat\n:KUBE-POSTROUTING - [0:0]\n-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" "
             "-j KUBE-POSTROUTING\n-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\n"
             "COMMIT\n")
    jobs = [(["ip", "netns", "exec", state.node(name).netns, "iptables-restore"],
             rules if name in want.random_fully else flush, f"NAT rules on {name}")
            for name in sorted(previous | want.random_fully)]
    run_many(jobs)


def apply_slow(state: LabState, want: Desired, previous: dict[str, int], previous_mitm: set[str] = frozenset()) -> None:
    """A node that answers slowly: its sshd makes every command wait first (ForceCommand), then runs
    it unchanged; a man in the middle (`mitm`): the node's sshd serves another host key than the lab's
    known_hosts has. sshd rereads its config on SIGHUP (same PID), so sessions already open keep theirs."""
    names = set(previous) | set(want.slow) | set(previous_mitm) | want.mitm
    changed = [name for name in sorted(names)
               if previous.get(name) != want.slow.get(name) or (name in previous_mitm) != (name in want.mitm)]
    for name in changed:
        sshd.write_config(state, state.node(name), want.slow.get(name), mitm=name in want.mitm)
        sshd.reload(state, state.node(name))


HOSTILE_SHIMS = {
    # the facts script's `link` section (ip -d link show dev D) never ends
    "facts-flood": ("ip", 'case " $* " in *" -d "*) exec yes "flood $*" ;; esac; exec /bin/ip "$@"\n'),
    # the facts script's `link` section: thousands of section markers in 1 MB, then the script dies (kills
    # the shell running it), so none of them, nor `link`, is ever closed
    "facts-markers": ("ip", 'case " $* " in *" -d "*) i=0; while [ $i -lt 4000 ]; do '
                            'printf "@@vxc@@ s%s\\n%0240d\\n" $i 0; i=$((i+1)); done; kill -KILL $PPID ;; esac; '
                            'exec /bin/ip "$@"\n'),
    # the agent's Python prints one endless line (its facts answer -V as a real Python does)
    "agent-flood": ("python3", 'case "$1" in -V|--version) exec /usr/bin/python3 "$@" ;; esac; '
                               'exec /usr/bin/python3 -c "import sys\nwhile 1: sys.stdout.write(\"x\" * 65536)"\n'),
    # the agent's Python answers the protocol with lines of the wrong shape
    "agent-garbage": ("python3", "case \"$1\" in -V|--version) exec /usr/bin/python3 \"$@\" ;; esac; "
                                 "cat >/dev/null & echo 'READY {\"node\": 1}'; echo 'SENT []'; "
                                 "echo 'EVIDENCE {\"targets\": 5, \"captured\": {\"node1\": 7}}'; wait\n"),
    # the view command never ends its output
    "kubectl-flood": ("kubectl", 'exec yes "{\"items\": ["\n'),
}


def apply_hostile(state: LabState, want: Desired) -> None:
    """`hostile=<kind>`: a fake binary first on the node's PATH answers the suite with bad output.
    Called after kubectl.write (node1's kubectl stand-in lives in the same bin dir)."""
    for node in state.nodes:
        bin_dir = state.state_dir / "nodes" / node.name / "bin"
        for kind, (tool, _) in HOSTILE_SHIMS.items():
            shim = bin_dir / tool
            if shim.exists() and shim.read_text().startswith("#!/bin/sh\n# vxlan lab: hostile") \
                    and want.hostile.get(node.name) != kind:
                shim.unlink()
        kind = want.hostile.get(node.name)
        if kind is not None:
            tool, body = HOSTILE_SHIMS[kind]
            shim = bin_dir / tool
            shim.write_text(f"#!/bin/sh\n# vxlan lab: hostile {kind}\n{body}")
            shim.chmod(0o755)


def apply_offload(state: LabState, want: Desired) -> None:
    run_many([(["ip", "netns", "exec", state.node(name).netns, "ethtool", "-K", state.device,
                "tx-checksum-ip-generic", value], None, f"offload on {name}") for name, value in want.offload.items()])


def apply_mounts(state: LabState, want: Desired, real_release: str) -> None:
    """Bind mounts in the node's own mount namespace only (its sshd's, which every SSH session shares):
    a uname shim and kernel files (`kernel=`), an empty non-executable file over every Python
    (`no-python`), account files that add LAB_USER (`unprivileged-user`). The machine's files never change."""
    for name, paths in list(state.mounts.items()):
        node = state.node(name)
        for path in reversed(paths):
            _in_node(node.sshd_pid, ["umount", path], f"unmounting {path} on {name}", check=False)
        del state.mounts[name]
    for name in sorted(set(want.kernel) | want.no_python | want.unprivileged_user | set(want.sudo_user)):
        binds = []
        if name in want.kernel:
            binds += _kernel_files(state, name, want.kernel[name], real_release)
        if name in want.no_python:
            binds += [(state.state_dir / "empty", path, "hiding Python") for path in python_paths()]
        if name in want.unprivileged_user or name in want.sudo_user:
            binds += _account_files(state, name, want.sudo_user.get(name))
        node, mounts = state.node(name), state.mounts.setdefault(name, [])
        for src, dst, what in binds:
            _in_node(node.sshd_pid, ["mount", "--bind", str(src), dst], f"{what} on {name}")
            mounts.append(dst)


def _kernel_files(state: LabState, name: str, release: str, real_release: str) -> list[tuple[Path, str, str]]:
    """A uname shim and osrelease/version files reporting `release`."""
    shim_dir = state.state_dir / "nodes" / name / "kernel"
    shim_dir.mkdir(parents=True, exist_ok=True)
    real_uname = state.state_dir / "uname.real"
    if not real_uname.exists():
        shutil.copy2(UNAME, real_uname)
    version = Path(PROC_VERSION).read_text().replace(real_release, release, 1)
    (shim_dir / "osrelease").write_text(release + "\n")
    (shim_dir / "version").write_text(version)
    shim = shim_dir / "uname"
    shim.write_text(_uname_shim(str(real_uname), release))
    shim.chmod(0o755)
    what = "faking the kernel"
    return [(shim, UNAME, what), (shim_dir / "osrelease", OSRELEASE, what), (shim_dir / "version", PROC_VERSION, what)]


def python_paths() -> list[str]:
    """The real files behind every Python collect/facts.py's pythons() finds on a node's PATH (python3 is
    usually a symlink, and a bind mount lands on the symlink's target)."""
    found = [shutil.which(name, path=SBIN_PATH) for name in PYTHON_NAMES] + [PLATFORM_PYTHON]
    return sorted({os.path.realpath(path) for path in found if path and os.path.exists(path)})


def _account_files(state: LabState, name: str, sudo: str | None = None) -> list[tuple[Path, str, str]]:
    """Copies of /etc/passwd, group and shadow plus LAB_USER: home /tmp, shell /bin/sh, password `*`
    (none, but not locked: with UsePAM no sshd refuses even key logins to a locked account). With `sudo`
    (`sudo-user=`): SUDO_USER instead, password SUDO_PASSWORD, and /etc/sudoers granting it sudo with
    that password or NOPASSWD."""
    etc = state.state_dir / "nodes" / name / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    uid = _free_id()
    user, secret = (SUDO_USER, _password_hash(SUDO_PASSWORD)) if sudo else (LAB_USER, "*")
    added = {"passwd": f"{user}:x:{uid}:{uid}:vxlan lab user:/tmp:/bin/sh\n",
             "group": f"{user}:x:{uid}:\n", "shadow": f"{user}:{secret}:19000:0:99999:7:::\n"}
    binds = []
    for file, line in added.items():
        real, copy = Path("/etc") / file, etc / file
        text = real.read_text()
        copy.write_text(text + ("" if text.endswith("\n") or not text else "\n") + line)
        copy.chmod(real.stat().st_mode & 0o777)
        binds.append((copy, str(real), f"adding user {user}"))
    if sudo:
        rule = "NOPASSWD: ALL" if sudo == "nopasswd" else "ALL"
        sudoers = etc / "sudoers"
        sudoers.write_text(f"Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n{user} ALL=(ALL:ALL) {rule}\n")
        sudoers.chmod(0o440)
        binds.append((sudoers, "/etc/sudoers", f"sudo for {user}"))
    return binds


def _password_hash(password: str) -> str:
    import subprocess

    done = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True,
                          check=True, timeout=30)
    return done.stdout.strip()


def _free_id(start: int = 47900) -> int:
    """A uid (and gid) no account or group on this machine has."""
    taken = {int(line.split(":")[2]) for file in ("/etc/passwd", "/etc/group")
             for line in Path(file).read_text().splitlines() if line.count(":") >= 2 and line.split(":")[2].isdigit()}
    return next(i for i in range(start, start + 10000) if i not in taken)


def _uname_shim(real: str, release: str) -> str:
    """The real uname, with the fake release in place of the real one whatever the options (-r, -a, -nrm)."""
    q = shlex.quote
    return f"""#!/bin/sh
# vxlan lab: kernel fault shim (fake release {release})
real={q(real)}
out=$("$real" "$@") || exit
r=$("$real" -r)
case $out in *"$r"*) out="${{out%%"$r"*}}"{q(release)}"${{out#*"$r"}}" ;; esac
printf '%s\\n' "$out"
"""


def _in_node(pid: int, argv: list[str], what: str, check: bool = True) -> None:
    run(["nsenter", "-t", str(pid), "-m", "--", *argv], what=what, check=check)


def remove_all(state: LabState) -> None:
    """Root-namespace leftovers of faults (the per-node ones vanish with the namespaces)."""
    run(["nft", "delete", "table", "bridge", bridge_table(state.instance)], check=False)
