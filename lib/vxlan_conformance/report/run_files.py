"""What the controller writes once per run, after the last verdict: the mesh matrix picture and the node
table in reports/, and for Allure the environment, the categories (one per diagnosis code) and the two
pictures as global attachments of the run."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vxlan_conformance import catalog
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.report.matrix import build_matrix, render_svg
from vxlan_conformance.report.nodes_table import node_rows, render_html, render_markdown

MATRIX_SVG = "mesh-matrix.svg"
NODES_MD, NODES_HTML = "nodes.md", "nodes.html"


@dataclass(frozen=True)
class RunFiles:
    matrix: Path | None     # None when no datapath verdict was recorded
    nodes_md: Path
    nodes_html: Path


def write_run_files(reports_dir: Path, allure_dir: Path | None, run: RunData, entries: list[dict[str, Any]],
                    duration_s: float) -> RunFiles:
    reports_dir.mkdir(parents=True, exist_ok=True)
    matrix_path = None
    if any(item["check"] == "datapath" for item in entries):
        matrix_path = reports_dir / MATRIX_SVG
        matrix_path.write_text(render_svg(build_matrix(run.nodes, entries)), encoding="utf-8")
    rows = node_rows(run, entries)
    nodes_md, nodes_html = reports_dir / NODES_MD, reports_dir / NODES_HTML
    nodes_md.write_text(render_markdown(rows), encoding="utf-8")
    nodes_html.write_text(render_html(rows), encoding="utf-8")
    if allure_dir is not None and allure_dir.is_dir():
        (allure_dir / "environment.properties").write_text(environment_properties(run, duration_s),
                                                           encoding="utf-8")
        (allure_dir / "categories.json").write_text(json.dumps(categories(), indent=1), encoding="utf-8")
        _global_attachments(matrix_path, nodes_html)
    return RunFiles(matrix_path, nodes_md, nodes_html)


def environment_properties(run: RunData, duration_s: float) -> str:
    kernels = Counter(f.kernel_release or "unknown" for f in run.facts.values())
    values = {
        "inventory": run.inventory_path,
        "cni": run.overlay.get("cni"),
        "device": run.overlay.get("device"),
        "port": run.overlay.get("port"),
        "vni": run.overlay.get("vni"),
        "cluster_view": run.view_source,
        "nodes": len(run.nodes),
        "unreachable": len(run.unreachable),
        "kernels": ", ".join(f"{k} ({n})" for k, n in kernels.most_common()) or "-",
        "mesh_pairs": len(run.mesh_pairs),
        "started": run.started,
        "duration_s": round(duration_s, 1),
    }
    return "".join(f"{key}={_property_value(value)}\n" for key, value in values.items())


def _property_value(value: Any) -> str:
    """Java properties escaping for the characters that can occur in paths and lists."""
    text = "-" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\:").replace("=", "\\=")


def categories() -> list[dict[str, Any]]:
    """One category per diagnosis code, most severe first. A failure message starts with its codes in
    brackets (`[UDP_PORT_BLOCKED] node1->node2: ...`); a failure with several codes lands in the
    category of its most severe one."""
    codes = sorted(catalog.load().values(), key=lambda i: catalog.SEVERITIES.index(i.severity))
    result = [{"name": f"{info.code}: {info.title}", "matchedStatuses": ["failed", "broken"],
               "messageRegex": rf"[\s\S]*\[[A-Z0-9_, ]*\b{re.escape(info.code)}\b[A-Z0-9_, ]*\][\s\S]*"}
              for info in codes]
    result.append({"name": "Failed without a diagnosis code", "matchedStatuses": ["failed", "broken"]})
    return result


def _global_attachments(matrix_path: Path | None, nodes_html: Path) -> None:
    """Run-level pictures, attached to the Allure run itself (allure-pytest's global attachments)."""
    import allure
    from allure_commons.types import AttachmentType

    if matrix_path is not None:
        allure.global_attach.file(str(matrix_path), name="mesh matrix", attachment_type=AttachmentType.SVG)
    allure.global_attach.file(str(nodes_html), name="nodes", attachment_type=AttachmentType.HTML)
