"""The suite at scale, run as a user runs it, side by side with a pytest-testinfra baseline on the same lab.

    python bench/suite_bench.py [--instance 6] [--sizes 10 20 50 100] [--baseline-max 20] [--big 1000]

As root, from anywhere. For every size: a healthy lab and one with faults, the suite (`python -m pytest
-n auto --inventory LAB --reports-dir TMP -q -p no:cacheprovider`, a subprocess from the project root),
and on healthy labs up to --baseline-max nodes the testinfra baseline (bench/baseline/, in a bench-only
venv that this script creates from bench/requirements.txt) and the floor (bench/floor/: the least any
`pytest -n auto` tool over SSH does). Then a --big lab with `--pairs sample:16`.
Writes the "Suite at scale" section of bench/RESULTS.md and appends raw rows to
bench/suite_bench.results.jsonl. Targets (issue 7): 100 nodes full run <= 30 s wall; at 20 nodes >= 20x
faster than the baseline; 1000 nodes with --pairs sample:16 <= 5 min.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from results_md import write_section  # noqa: E402  (bench/ is the script's directory)

from vxlan_conformance.lab import Lab, plan  # noqa: E402

RAW = BENCH / "suite_bench.results.jsonl"
SECTION = "## Suite at scale"
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vxlan-conformance" / "bench-venv"
FAULTS = ("blocked-port@node2", "bad-checksum@node3", "dup-vtep-mac@node4,node5")
RUN_LIMIT_S = 900.0
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """One run of the suite or the baseline against one lab."""

    tool: str                      # suite | baseline | floor
    nodes: int
    scenario: str                  # healthy | faults
    args: list[str]
    exit_code: int
    wall_s: float
    cpu_s: float                   # user+sys of the pytest process and every worker it waited for
    max_rss_mb: float              # largest single process of the tree (wait4 ru_maxrss)
    tree_rss_mb: float             # peak of the summed RSS of the live process tree (sampled /proc)
    node_cpu_s: float              # CPU spent inside the lab nodes (sshd sessions, commands, agents)
    ssh_seen: int                  # distinct TCP connections to port 22 seen (sampled /proc/net/tcp)
    ssh_connections: int | None    # what the suite counted (run.json)
    phases: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    load_before: float = 0.0       # 1-min load average: the machine is shared, read results with it

    def row(self) -> dict:
        return asdict(self)


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process and its descendants, and every SSH connection they open, by
    reading /proc every 100 ms (ru_maxrss only knows the largest single process)."""

    def __init__(self, pid: int, underlay: ipaddress.IPv4Network) -> None:
        super().__init__(daemon=True)
        self.pid, self.underlay, self.peak, self.connections = pid, underlay, 0, set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.peak = max(self.peak, sum(_rss(pid) for pid in _descendants(self.pid)))
            self.connections |= _ssh_connections(self.underlay)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _ssh_connections(underlay: ipaddress.IPv4Network) -> set[tuple[str, str]]:
    """(local, remote) of established TCP connections to port 22 (0016) of the lab's nodes (other
    jobs on this machine have labs and SSH connections of their own)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, _, port = fields[2].partition(":")
        if port == "0016" and fields[3] == "01" and _address(remote) in underlay:
            found.add((fields[1], fields[2]))
    return found


def _address(little_endian_hex: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(bytes.fromhex(little_endian_hex)[::-1])


def node_cpu(lab: Lab) -> float:
    """CPU seconds of the lab's sshd daemons and every session they reaped (commands, agents)."""
    state = lab.state()
    total = 0
    for node in state.nodes if state else []:
        try:
            fields = Path(f"/proc/{node.sshd_pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return total / TICK


def measure(command: list[str], cwd: Path, env: dict[str, str], log: Path,
            lab: Lab) -> tuple[int, float, float, float, float, float, int]:
    """Run one pytest to completion: exit code, wall, cpu, max rss, tree rss, node cpu, ssh seen."""
    node_before = node_cpu(lab)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid, plan.underlay(lab.instance))
        sampler.start()
        timer = threading.Timer(RUN_LIMIT_S, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    return (proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
            sampler.peak / 2**20, node_cpu(lab) - node_before, len(sampler.connections))


def run_suite(lab: Lab, inventory: Path, tmp: Path, nodes: int, scenario: str, extra: list[str]) -> Measured:
    reports, clock, log = tmp / "reports", tmp / "clock.json", tmp / f"suite-{nodes}-{scenario}.log"
    clock.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-n", "auto", "--inventory", str(inventory),
               "--reports-dir", str(reports), "-q", "-p", "no:cacheprovider", "-p", "bench.suite_clock",
               *extra]
    env = {**os.environ, "VXLAN_BENCH_CLOCK": str(clock)}
    load = os.getloadavg()[0]
    started = time.time()
    code, wall, cpu, max_rss, tree_rss, ncpu, seen = measure(command, ROOT, env, log, lab)
    run = _read_json(reports / ".run" / "run.json") or {}
    summary = _read_json(reports / "summary.json") or {}
    marks = _read_json(clock) or {}
    if code not in (0, 1):
        print(f"  suite exit {code}; see {log}:\n" + log.read_text()[-1500:], flush=True)
    return Measured("suite", nodes, scenario, extra, code, wall, cpu, max_rss, tree_rss, ncpu, seen,
                    run.get("counters", {}).get("ssh_connections"),
                    suite_phases(started, wall, marks, run.get("timings", {})),
                    summary.get("counts", {}), load)


def suite_phases(started: float, wall: float, marks: dict[str, float], timings: dict[str, float]) -> dict:
    """Seconds per phase, from the plugin's marks (bench/suite_clock.py) and run.json's timings."""
    if not {"sessionstart", "sessionstarted", "sessionfinish", "sessionfinished"} <= marks.keys():
        return dict(timings)
    gathered = marks.get("gathered", marks["sessionstart"])
    phases = {"startup": marks["sessionstart"] - started, **timings,
              "connect+other": gathered - marks["sessionstart"] - sum(timings.values())}
    first = marks.get("first_report", marks["sessionfinish"])
    phases["workers+collect"] = first - gathered
    phases["items"] = marks.get("last_report", first) - first
    phases["reports"] = marks["sessionfinished"] - marks["sessionfinish"]
    phases["exit"] = started + wall - marks["sessionfinished"]
    return {k: round(v, 3) for k, v in phases.items()}


def run_baseline(lab: Lab, tmp: Path, nodes: int, scenario: str) -> Measured:
    state = lab.state()
    hosts = ",".join(f"paramiko://root@{n.address}" for n in state.nodes)
    ssh_config = tmp / "ssh_config"
    # testinfra's paramiko backend never reads known_hosts (it warns and accepts); say so explicitly
    ssh_config.write_text("Host *\n  StrictHostKeyChecking no\n")
    clock, log = tmp / "clock.json", tmp / f"baseline-{nodes}.log"
    clock.unlink(missing_ok=True)
    command = [str(VENV / "bin" / "python"), "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
               "-p", "suite_clock", f"--hosts={hosts}", "--ssh-identity-file", state.key_path,
               "--ssh-config", str(ssh_config), "--vxlan-device", state.device]
    env = {**os.environ, "VXLAN_BENCH_CLOCK": str(clock), "PYTHONPATH": str(BENCH)}
    load = os.getloadavg()[0]
    started = time.time()
    code, wall, cpu, max_rss, tree_rss, ncpu, seen = measure(command, BENCH / "baseline", env, log, lab)
    marks = _read_json(clock) or {}
    phases = suite_phases(started, wall, marks, {})
    phases.pop("connect+other", None)
    return Measured("baseline", nodes, scenario, [], code, wall, cpu, max_rss, tree_rss, ncpu, seen, None,
                    phases, _counts(log.read_text()), load)


def run_floor(lab: Lab, tmp: Path, nodes: int, scenario: str) -> Measured:
    """bench/floor/: `pytest -n auto` whose one test opens an SSH connection to every node in parallel
    and runs `true`; no tool of this kind can be faster on this lab."""
    state = lab.state()
    log = tmp / f"floor-{nodes}.log"
    command = [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, "VXLAN_FLOOR_HOSTS": ",".join(n.address for n in state.nodes), "VXLAN_FLOOR_USER": "root",
           "VXLAN_FLOOR_KEY": state.key_path, "VXLAN_FLOOR_KNOWN_HOSTS": state.known_hosts_path}
    load = os.getloadavg()[0]
    code, wall, cpu, max_rss, tree_rss, ncpu, seen = measure(command, BENCH / "floor", env, log, lab)
    if code != 0:
        print(f"  floor exit {code}; see {log}:\n" + log.read_text()[-1500:], flush=True)
    return Measured("floor", nodes, scenario, [], code, wall, cpu, max_rss, tree_rss, ncpu, seen, None,
                    {}, _counts(log.read_text()), load)


def _counts(output: str) -> dict[str, int]:
    """pytest's last line: '140 passed, 10 skipped in 6.13s'."""
    tail = output.strip().splitlines()[-1] if output.strip() else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail)}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def ensure_baseline_venv() -> None:
    """A venv of its own (sharing this interpreter's packages) so pytest-testinfra's plugin never loads
    in the product's own runs."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True,
                       timeout=120)
    probe = subprocess.run([str(python), "-c", "import testinfra"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        print(f"installing {BENCH / 'requirements.txt'} into {VENV}", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(BENCH / "requirements.txt")],
                       check=True, timeout=600)


def settle(idle_share: float = 0.8, quiet_s: int = 3, limit_s: float = 300.0) -> None:
    """Wait until the lab has finished starting (a 1000-node lab keeps both CPUs busy for a minute after
    `up` returns: 1000 sshd loading host keys): the CPUs idle for `quiet_s` seconds in a row."""
    deadline, quiet = time.monotonic() + limit_s, 0
    before = _cpu_times()
    while quiet < quiet_s and time.monotonic() < deadline:
        time.sleep(1.0)
        now = _cpu_times()
        busy, idle = now[0] - before[0], now[1] - before[1]
        quiet = quiet + 1 if idle >= idle_share * (busy + idle) else 0
        before = now


def _cpu_times() -> tuple[int, int]:
    """(busy, idle) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, idle


def bench(args: argparse.Namespace) -> list[Measured]:
    lab = Lab(args.instance)
    rows: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="suite-bench-") as name:
        tmp = Path(name)
        inventory = tmp / "lab.yaml"
        try:
            for size in args.sizes:
                for scenario, faults in (("healthy", ()), ("faults", FAULTS)):
                    lab.up(nodes=size, faults=faults, inventory_path=str(inventory))
                    settle()
                    for _ in range(args.repeat):
                        rows.append(report(run_suite(lab, inventory, tmp, size, scenario, [])))
                    if scenario == "healthy" and size <= args.baseline_max:
                        rows.append(report(run_baseline(lab, tmp, size, scenario)))
                        rows.append(report(run_floor(lab, tmp, size, scenario)))
            if args.big:
                lab.up(nodes=args.big, inventory_path=str(inventory))
                settle()
                rows.append(report(run_suite(lab, inventory, tmp, args.big, "healthy",
                                             ["--pairs", f"sample:{args.sample}"])))
        finally:
            lab.down()
    return rows


def report(row: Measured) -> Measured:
    print(f"{row.tool:8s} {row.nodes:5d} {row.scenario:8s} exit {row.exit_code} wall {row.wall_s:7.2f} s "
          f"cpu {row.cpu_s:7.2f} s tree {row.tree_rss_mb:6.0f} MiB ssh {row.ssh_seen:5d} "
          f"{row.counts} {row.phases}", flush=True)
    with RAW.open("a") as out:
        out.write(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"), **row.row()}) + "\n")
    return row


def latest_rows() -> list[Measured]:
    """The newest run of every (tool, nodes, lab, options) in the raw file, so runs with different
    --sizes / --big add up to one table."""
    latest: dict[tuple, Measured] = {}
    for line in RAW.read_text().splitlines():
        data = json.loads(line)
        data.pop("date")
        row = Measured(**data)
        latest[(row.tool, row.nodes, row.scenario, tuple(row.args))] = row
    return sorted(latest.values(), key=lambda r: (r.nodes, r.scenario != "healthy", r.tool != "suite"))


def versions() -> str:
    names = ("pytest", "pytest-xdist", "paramiko", "scapy")
    return ", ".join([f"Python {platform.python_version()}", *(f"{n} {metadata.version(n)}" for n in names)])


def machine() -> str:
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    return f"{os.cpu_count()} CPUs (nproc), {mem:.0f} GiB RAM, kernel {platform.release()}"


PHASES = ("startup", "facts", "view", "mesh", "connect+other", "workers+collect", "items", "reports", "exit")


def render(rows: list[Measured]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [SECTION, "",
             f"Machine: {machine()}; {versions()}; written {stamp}. `python bench/suite_bench.py` "
             "(the newest run per row, from bench/suite_bench.results.jsonl; the machine was shared with "
             "other jobs: the load column is the 1-minute load average when the run started). "
             f"Faults: {' + '.join(FAULTS)}. Wall and CPU are of the whole `pytest -n auto` process tree; "
             "node CPU is what the lab nodes spent (sshd, commands, agents); SSH = TCP connections to port "
             "22 seen during the run (run.json's own count in brackets).", "",
             "| tool | nodes | lab | pairs | wall (s) | CPU (s) | node CPU (s) | peak RSS tree / largest (MiB) "
             "| SSH | passed / failed / skipped | load |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        pairs = r.args[1] if r.args[:1] == ["--pairs"] else "all"
        ssh = f"{r.ssh_seen} ({r.ssh_connections})" if r.ssh_connections is not None else str(r.ssh_seen)
        counts = " / ".join(str(r.counts.get(k, 0)) for k in ("passed", "failed", "skipped"))
        lines.append(f"| {r.tool} | {r.nodes} | {r.scenario} | {pairs} | {r.wall_s:.1f} | {r.cpu_s:.1f} | "
                     f"{r.node_cpu_s:.1f} | {r.tree_rss_mb:.0f} / {r.max_rss_mb:.0f} | {ssh} | {counts} | "
                     f"{r.load_before:.1f} |")
    lines += ["", "Time per phase (s), suite runs: startup = interpreter, plugins, inventory (until "
              "sessionstart); facts / view / mesh from run.json; connect+other = the rest of the gathering "
              "(SSH handshakes overlap facts); workers+collect = xdist workers started, importing and collecting, "
              "until the first test report; items = "
              "first to last test report; reports = sessionfinish (summary, junit, allure, HTML); exit = "
              "after that.", "",
              "| nodes | lab | pairs | " + " | ".join(PHASES) + " |",
              "|---:|---|---|" + "---:|" * len(PHASES)]
    for r in rows:
        if r.tool == "suite":
            pairs = r.args[1] if r.args[:1] == ["--pairs"] else "all"
            lines.append(f"| {r.nodes} | {r.scenario} | {pairs} | "
                         + " | ".join(f"{r.phases.get(p, 0):.2f}" for p in PHASES) + " |")
    ratios = []
    for b in (r for r in rows if r.tool == "baseline"):
        ours = [r.wall_s for r in rows if r.tool == "suite" and r.nodes == b.nodes and r.scenario == b.scenario
                and not r.args]
        floor = next((r.wall_s for r in rows if r.tool == "floor" and r.nodes == b.nodes), None)
        if ours:
            best = min(ours)
            most = f"{floor:.2f} | {b.wall_s / floor:.1f}x" if floor else "- | -"
            ratios.append(f"| {b.nodes} | {best:.1f} | {b.wall_s:.1f} | {best / b.wall_s:.3f} | "
                          f"{b.wall_s / best:.1f}x | {most} |")
    if ratios:
        lines += ["", "Against the testinfra baseline (bench/baseline/, `pytest -n auto`, same lab, same run). "
                  "Floor (bench/floor/): `pytest -n auto` whose one test opens an SSH connection to every node "
                  "in parallel and runs `true` there, nothing else; baseline / floor is the largest speed-up "
                  "any `pytest -n auto` tool that reaches the nodes over SSH could show on this lab:",
                  "", "| nodes | suite wall (s) | baseline wall (s) | ours / baseline | speed-up | floor wall (s) "
                  "| largest possible speed-up |",
                  "|---:|---:|---:|---:|---:|---:|---:|", *ratios]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=int, default=6)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 20, 50, 100])
    parser.add_argument("--repeat", type=int, default=1, help="suite runs per lab")
    parser.add_argument("--baseline-max", type=int, default=20, help="run the baseline up to this size")
    parser.add_argument("--big", type=int, default=1000, help="nodes of the sampled run (0: skip)")
    parser.add_argument("--sample", type=int, default=16, help="peers per node in the sampled run")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("suite_bench: must run as root (the lab builds network namespaces)", file=sys.stderr)
        return 2
    if any(size <= args.baseline_max for size in args.sizes):
        ensure_baseline_venv()
    rows = bench(args)
    if not args.no_write:
        write_section(SECTION, render(latest_rows()))
    return 0 if all(r.exit_code in ((0,) if r.tool == "floor" else (0, 1)) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
