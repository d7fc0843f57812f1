"""Datapath per directed pair A->B: real VXLAN frames, the kernel's own overlay path, UDP echo of odd and
even sizes and a DF probe, with B capturing what arrives (seeds 002, 003, 004). The mesh ran once for the
whole run; each test only judges its pairs' evidence."""

import pytest

from vxlan_conformance.checks.datapath import diagnose
from vxlan_conformance.plugin.suite import verdicts

pytestmark = [pytest.mark.pair, pytest.mark.datapath]


def test_datapath(request, run, pairs):
    verdicts(request, [diagnose(run, a, b) for a, b in pairs])
