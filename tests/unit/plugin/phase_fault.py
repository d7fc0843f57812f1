"""A pytest plugin for tests/unit/plugin/test_phase_errors.py, loaded into a suite run with `-p`: the phase named
by VXLAN_TEST_PHASE_FAULT raises what a bug or unforeseen node data would raise."""

from __future__ import annotations

import os

from vxlan_conformance.collect import gather, predict
from vxlan_conformance.mesh import phase

PHASE = os.environ.get("VXLAN_TEST_PHASE_FAULT", "")
SECRET = os.environ.get("VXLAN_TEST_PHASE_SECRET", "")


def _boom(*args: object, **kwargs: object) -> None:
    raise ValueError(f"unforeseen data in the {PHASE} phase near {SECRET!r}")


if PHASE == "gather":
    gather.gather = _boom
elif PHASE == "predict":
    predict.run_predict_phase = _boom
elif PHASE == "mesh":
    phase.run_mesh_phase = _boom
