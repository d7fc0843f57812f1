"""The node agent as text: shipped over stdin, so nothing is ever written to a node's disk.

The node runs ``python -u -c LOADER``; stdin carries the agent source, a ``#--plan--`` line, the plan as
one JSON line, and then the protocol commands (GO, STOP). The loader is Python 2.7 and 3.6+ compatible.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

PLAN_MARKER = b"\n#--plan--\n"

LOADER = """import os,sys
b=b''
m=b'\\n#--plan--\\n'
while m not in b or b'\\n' not in b.split(m,1)[1]:
 c=os.read(0,65536)
 if not c:
  sys.stdout.write('ERROR stdin closed before the plan arrived\\n');sys.exit(2)
 b+=c
s,r=b.split(m,1)
p,r=r.split(b'\\n',1)
exec(compile(s,'vxlan_agent.py','exec'),{'__name__':'__vxlan_agent__','PLAN_JSON':p,'PENDING':r})
"""


@cache
def agent_source() -> str:
    """Source of lib/vxlan_conformance/agent/vxlan_agent.py (ASCII, so characters equal bytes on the wire)."""
    return (Path(__file__).with_name("vxlan_agent.py")).read_text(encoding="ascii")


def launch_payload(plan: dict) -> bytes:
    """Everything to write to the agent's stdin before GO: source, marker, plan line."""
    plan_line = json.dumps(plan, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return agent_source().encode("ascii") + PLAN_MARKER + plan_line + b"\n"


def python_command(python_path: str) -> list[str]:
    """argv that starts the agent with `python_path` (quote with shlex.join for a remote shell). -S: the
    agent needs the standard library only, and skipping site-packages halves the start-up that a run
    pays once per node."""
    return [python_path, "-u", "-S", "-c", LOADER]
