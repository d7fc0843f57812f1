"""The once-per-run phase: reach every node, collect its facts and the advertised view (then the mesh).

One SSH connection per node (transport.ssh.Pool), one exec per node for facts, one command for the view.
A node that cannot be reached is recorded with its one-line reason; it never blocks the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

from vxlan_conformance import cni
from vxlan_conformance.collect import cluster_view, facts
from vxlan_conformance.collect.peer_tables import keep_selected_peers
from vxlan_conformance.inventory import Host, Inventory
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.transport import Connection, Pool, SSHError, SSHOptions, Target

Progress = Callable[[str], None]
PHASES = ("facts", "view", "mesh")
PARSED_IN_FULL = ("fdb", "neigh", "route", "addr")  # raw sections that grow with the cluster
FACTS_MAX_OUTPUT = 64 << 20  # a node with a huge firewall ruleset still fits; an endless one does not
VIEW_MAX_OUTPUT = 256 << 20  # `kubectl get nodes -o json` of thousands of nodes


def target_of(host: Host, bastion: Host | None) -> Target:
    """The SSH target for an inventory host; every host but the bastion itself goes through it."""
    jump = target_of(bastion, None) if bastion is not None and bastion.name != host.name else None
    return Target(name=host.name, hostname=host.ssh_host, port=host.ssh_port, user=host.user,
                  key_file=host.key_file, password=host.password, become=host.become,
                  become_password=host.become_password, common_args=host.ssh_common_args, jump=jump)


def ssh_options(inventory: Inventory, connect_timeout: float, command_timeout: float) -> SSHOptions:
    return SSHOptions(connect_timeout=connect_timeout, command_timeout=command_timeout,
                      host_key_policy=inventory.overlay.host_key_policy,
                      known_hosts=inventory.overlay.known_hosts)


def open_pool(inventory: Inventory, options: SSHOptions) -> Pool:
    hosts = {name: inventory.hosts[name] for name in inventory.nodes}
    for extra in (*inventory.control_plane()[:1], *inventory.etcd_hosts()[:1]):
        hosts.setdefault(extra.name, extra)
    return Pool([target_of(h, inventory.bastion) for h in hosts.values()], options)


def new_run(inventory: Inventory, options: dict) -> RunData:
    """The run's record, created before any node is contacted so an interrupted run can still report.
    The view commands are kept by their program name only: vxlan_kubectl / vxlan_etcdctl may carry a
    --token, and run.json is one of the files a run writes."""
    overlay = asdict(inventory.overlay)
    for key in ("kubectl", "etcdctl"):
        overlay[key] = command_shown(overlay[key])
    return RunData(inventory_path=str(inventory.path),
                   started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   nodes=list(inventory.nodes),
                   addresses={name: inventory.hosts[name].address for name in inventory.nodes},
                   overlay=overlay, options=options)


def command_shown(command: str | None) -> str:
    """`kubectl --token=abc --server x` -> `kubectl [arguments hidden]`: how messages name a view command."""
    words = (command or "").split()
    if not words:
        return ""
    return words[0] + (" [arguments hidden]" if len(words) > 1 else "")


def hide_commands(text: str, commands: list[str | None]) -> str:
    """`text` with every configured view command (which may carry a credential) shown by its program only."""
    for command in sorted(filter(None, commands), key=len, reverse=True):
        if len(command.split()) > 1:
            text = text.replace(command, command_shown(command))
            for word in command.split()[1:]:
                if len(word) >= 8:  # a token cut short by a message's length limit is still a token
                    text = text.replace(word, "***")
    return text


def gather(inventory: Inventory, pool: Pool, run: RunData, *, progress: Progress) -> None:
    """Facts of every node and the advertised view, into `run`; the mesh is added by vxlan_conformance.mesh.phase."""
    _timed(run, "facts", lambda: _collect_facts(inventory, pool, run, progress))
    _timed(run, "view", lambda: _collect_view(inventory, pool, run, progress))
    run.counters["peer_entries_dropped"] = keep_selected_peers(run)


def current_phase(run: RunData) -> str:
    """The phase a run was in when it stopped: the first one without a recorded duration."""
    return next((phase for phase in PHASES if phase not in run.timings), "checks")


def _timed(run: RunData, phase: str, work: Callable[[], None]) -> None:
    start = time.perf_counter()
    work()
    run.timings[phase] = round(time.perf_counter() - start, 3)


def _collect_facts(inventory: Inventory, pool: Pool, run: RunData, progress: Progress) -> None:
    overlay = inventory.overlay
    script = facts.collect_script(overlay.device, overlay.port)

    def one(conn: Connection) -> facts.NodeFacts:
        result = conn.run(script, max_output=FACTS_MAX_OUTPUT)
        parsed = facts.parse(conn.target.name, result.stdout, overlay.device, run.addresses.get(conn.target.name))
        for section in PARSED_IN_FULL:  # one line per peer: kept as records, not twice as text
            parsed.raw.pop(section, None)
        return parsed

    progress(f"facts: {len(run.nodes)} nodes")
    before = pool.commands_run
    outcomes = pool.map(one, run.nodes)
    run.counters["facts_commands"] = pool.commands_run - before  # one exec per node, by design
    for host, outcome in outcomes.items():
        if isinstance(outcome, SSHError):
            run.unreachable[host] = str(outcome)
        else:
            run.facts[host] = outcome
            run.host_key_policy[host] = pool.connection(host).endpoint.policy
    if run.unreachable:
        progress(f"facts: {len(run.unreachable)} unreachable: {', '.join(sorted(run.unreachable))}")


def _collect_view(inventory: Inventory, pool: Pool, run: RunData, progress: Progress) -> None:
    overlay = inventory.overlay
    kind = overlay.cluster_view
    run.view_source = kind
    if kind == "none":
        return
    secrets = [overlay.kubectl, overlay.etcdctl]
    try:
        if kind == "kubectl-local":
            runner = cluster_view.local_runner(overlay.kubeconfig, pool.options.command_timeout)
            where = "this machine"
        else:
            hosts = inventory.control_plane() if kind == "kubectl" else inventory.etcd_hosts()
            if not hosts:
                group = "kube_control_plane" if kind == "kubectl" else "etcd"
                raise cluster_view.ViewError(f"{inventory.path}: vxlan_cluster_view is {kind} but the "
                                             f"inventory has no {group} group; add it or set none")
            where = hosts[0].name
            runner = _ssh_runner(pool, where, secrets)
        progress(f"view: {kind} on {where}")
        view = cluster_view.fetch_view(kind, runner, cni=cni.of_run(run), kubectl=overlay.kubectl,
                                       etcdctl=overlay.etcdctl, where=where, etcd_prefix=overlay.etcd_prefix)
        advertised, run.view_note, run.view_config = view.advertised, view.note, view.config
        run.view_cluster = view.cluster
        if view.note:
            progress(f"view: {view.note}")
    except (cluster_view.ViewError, SSHError) as exc:
        run.view_error = hide_commands(str(exc), secrets)
        progress(f"view: {run.view_error}")
        return
    except Exception as exc:  # noqa: BLE001 - a view we cannot read costs the view, never the run
        run.view_error = hide_commands(f"cannot read the cluster view ({type(exc).__name__}: {exc})"[:300],
                                       secrets)
        progress(f"view: {run.view_error}")
        return
    try:
        run.view = cluster_view.match_hosts(advertised, run.addresses,
                                            {host: cni.of_run(run).device_ip(run, host)
                                             for host in run.facts})
        matched = {adv.node_name for adv in run.view.values()}
        run.view_unmatched = [adv for adv in advertised if adv.node_name not in matched]
    except Exception as exc:  # noqa: BLE001 - as above
        run.view, run.view_unmatched = {}, []
        run.view_error = f"cannot match the cluster view to the inventory ({type(exc).__name__}: {exc})"[:300]
        progress(f"view: {run.view_error}")


def _ssh_runner(pool: Pool, host: str, secrets: list[str | None]) -> cluster_view.Runner:
    def run(command: str) -> tuple[int, str, str]:
        result = pool.connection(host).run(command, shown=hide_commands(command, secrets),
                                           max_output=VIEW_MAX_OUTPUT)
        return result.exit_status, result.stdout, result.stderr
    return run
