"""The embedded lab: a flannel/Calico VXLAN cluster on one machine, breakable like the field incidents.

>>> from vxlan_conformance.lab import Lab
>>> state = Lab(instance=2).up(nodes=4, faults=["blocked-port@node2"])   # doctest: +SKIP
"""

from .errors import LabError
from .lab import Lab
from .state import LabNode, LabState

__all__ = ["Lab", "LabError", "LabNode", "LabState"]
