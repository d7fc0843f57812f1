"""Will the VTEP MACs be unique once the overlay is installed? (opt-in: see lib/vxlan_conformance/collect/predict.py)"""

from __future__ import annotations

from vxlan_conformance.checks.expect import shared_by
from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.result import CheckResult, NotApplicable
from vxlan_conformance.model.rundata import RunData


@check("vtep-mac-predicted-unique", "Predicted VTEP MAC unique", "node", codes=("PREDICT_FAILED", "VTEP_MAC_DUPLICATE"))
def mac_unique(run: RunData, host: str) -> CheckResult:
    if not run.options.get("predict"):
        raise NotApplicable("creates a temporary VXLAN device on every node: run with --allow-state-changes")
    if host in run.predict_errors:
        return CheckResult(host, ("PREDICT_FAILED",), run.predict_errors[host],
                           values={"node": host})
    sharing = shared_by(run, "predicted-mac", lambda: dict(run.predicted_macs), host)
    if not sharing:
        return CheckResult(host, note=f"a new VXLAN device got {run.predicted_macs[host]}")
    return CheckResult(host, ("VTEP_MAC_DUPLICATE",),
        f"a new VXLAN device gets MAC {run.predicted_macs[host]} on {', '.join(sharing)}: their overlay devices "
        "will collide once installed", evidence="\n".join(f"{h}: {run.predicted_macs[h]}" for h in sharing),
        values={"node": host, "device": run.overlay["device"]})
