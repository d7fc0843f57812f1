"""The checks: pure functions from the run's shared data to CheckResult, one module per concern.

Each is registered by `@check(id, title, scope, codes)` (checks/registry.py); its codes and their
remediation are data (lib/vxlan_conformance/data/checks.yaml). Importing this package registers them all.
"""

from vxlan_conformance.checks import access, datapath, kernel, peers, predict, public_ip, view, vtep
from vxlan_conformance.checks.registry import REGISTRY, CheckSpec, check

__all__ = ["REGISTRY", "CheckSpec", "access", "check", "datapath", "kernel", "peers", "predict", "public_ip",
           "view", "vtep"]
