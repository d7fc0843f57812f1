"""SSH to the nodes (paramiko): one `run()` per host returning a CommandResult, like testinfra.

Why not plain SSHClient.connect(hostname): the suite must honour what users already have (~/.ssh/config
with Include, ProxyJump through a bastion, ansible_ssh_common_args), keep one connection per host for the
whole run, bound every step by a time limit, and turn every failure into one line that names the host and
the fix. resolve.py finds the endpoint, hub.py holds the clients, connection.py runs commands, pool.py
serves a whole run.
"""

from vxlan_conformance.transport.connection import CommandResult, Connection, Stream
from vxlan_conformance.transport.errors import SSHError
from vxlan_conformance.transport.pool import Pool
from vxlan_conformance.transport.resolve import SSHOptions, Target

__all__ = ["CommandResult", "Connection", "Pool", "SSHError", "SSHOptions", "Stream", "Target"]
