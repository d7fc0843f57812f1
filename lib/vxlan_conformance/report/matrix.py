"""The mesh matrix picture: sender (rows) x receiver (columns), each cell coloured by the datapath
outcome of that directed pair (passed, or the diagnosis code), as a self-contained SVG.

A broken node shows as a line: a red column when nothing reaches it (blocked port, bad checksums on
its side), a red row when what it sends is lost. Readable at 100 nodes (one cell per pair, labels on
every row and column); above MAX_SIDE nodes, cells aggregate k x k pairs and show the most frequent
failure among them. Equal neighbouring cells of a row are drawn as one rectangle, so a healthy
1000-node mesh stays small.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from vxlan_conformance import catalog

PASSED, NOT_PROBED, SKIPPED, FAILED = "PASSED", "NOT_PROBED", "SKIPPED", "FAILED"
NOT_FAILURES = (PASSED, NOT_PROBED, SKIPPED)
MAX_SIDE = 150                 # cells per side before pairs aggregate into blocks
GRID_PX = 900                  # the grid's target width
FIXED_COLOURS = {PASSED: "#4caf50", NOT_PROBED: "#e0e0e0", SKIPPED: "#b0bec5", FAILED: "#616161"}
CODE_COLOURS = ("#e53935", "#fb8c00", "#8e24aa", "#1e88e5", "#fdd835", "#6d4c41", "#d81b60", "#00897b",
                "#3949ab", "#c0ca33", "#5e35b1", "#f4511e")
DIAGONAL = "#ffffff"


@dataclass
class Matrix:
    """Outcome of every directed pair of `nodes` that has a datapath verdict."""

    nodes: list[str]
    outcomes: dict[tuple[str, str], str] = field(default_factory=dict)

    def outcome(self, sender: str, receiver: str) -> str:
        return self.outcomes.get((sender, receiver), NOT_PROBED)

    def failing(self) -> set[tuple[str, str]]:
        return {pair for pair, outcome in self.outcomes.items() if outcome not in NOT_FAILURES}

    def counts(self) -> Counter[str]:
        return Counter(self.outcome(a, b) for a in self.nodes for b in self.nodes if a != b)


def build_matrix(nodes: list[str], entries: list[dict[str, Any]]) -> Matrix:
    """From summary entries: check `datapath`, subject `A->B`; a failure shows its first (most
    specific) code."""
    matrix = Matrix(list(nodes))
    for item in entries:
        if item["check"] != "datapath" or "->" not in item["subject"]:
            continue
        sender, receiver = item["subject"].split("->", 1)
        if item["status"] == "passed":
            outcome = PASSED
        elif item["status"] == "skipped":
            outcome = SKIPPED
        else:
            outcome = item["codes"][0] if item["codes"] else FAILED
        matrix.outcomes[(sender, receiver)] = outcome
    return matrix


def colours(matrix: Matrix) -> dict[str, str]:
    """A stable colour per outcome: fixed for passed/not probed/skipped, codes in catalog order."""
    known = list(catalog.load())
    codes = sorted({o for o in matrix.outcomes.values() if o not in FIXED_COLOURS},
                   key=lambda c: (known.index(c) if c in known else len(known), c))
    return {**FIXED_COLOURS, **{code: CODE_COLOURS[i % len(CODE_COLOURS)] for i, code in enumerate(codes)}}


@dataclass(frozen=True)
class _Block:
    """A run of nodes that share one row or column of the picture."""

    first: int
    last: int   # inclusive

    def label(self, nodes: list[str]) -> str:
        return nodes[self.first] if self.first == self.last else f"{nodes[self.first]} .. {nodes[self.last]}"


def _blocks(count: int) -> list[_Block]:
    size = max(1, math.ceil(count / MAX_SIDE))
    return [_Block(i, min(i + size, count) - 1) for i in range(0, count, size)]


def _block_outcome(matrix: Matrix, rows: _Block, cols: _Block) -> str | None:
    """The most frequent failure among the block's pairs, else passed / not probed; None on the
    diagonal of single cells."""
    found: Counter[str] = Counter()
    for i in range(rows.first, rows.last + 1):
        for j in range(cols.first, cols.last + 1):
            if i != j:
                found[matrix.outcome(matrix.nodes[i], matrix.nodes[j])] += 1
    if not found:
        return None
    failures = [(n, o) for o, n in found.items() if o not in NOT_FAILURES]
    if failures:
        return max(failures)[1]
    return PASSED if found[PASSED] else max((n, o) for o, n in found.items())[1]


def render_svg(matrix: Matrix, title: str = "Datapath mesh") -> str:
    nodes = matrix.nodes
    blocks = _blocks(len(nodes))
    side = len(blocks)
    cell = max(3, min(28, GRID_PX // max(side, 1)))
    font = max(5.0, min(12.0, cell * 0.8))
    label_w = int(min(220, 12 + font * 0.62 * max((len(b.label(nodes)) for b in blocks), default=4)))
    top, left = 56 + label_w, 10 + label_w
    grid = side * cell
    palette = colours(matrix)
    counts = matrix.counts()
    legend = [o for o in palette if counts.get(o)]
    legend_h = 24 + 18 * len(legend)
    width, height = max(left + grid + 20, 560), top + grid + 20 + legend_h
    aggregated = blocks and blocks[0].last > blocks[0].first
    subtitle = (f"{len(nodes)} nodes, {len(matrix.failing())} failing of {sum(counts.values())} directed pairs"
                + (f"; each cell is {blocks[0].last - blocks[0].first + 1} x "
                   f"{blocks[0].last - blocks[0].first + 1} pairs (most frequent failure shown)" if aggregated else ""))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}: sender (rows) x receiver '
           f'(columns)</text>',
           f'<text x="10" y="38" font-size="11" fill="#444">{escape(subtitle)}</text>']
    for index, block in enumerate(blocks):
        y = top + index * cell + cell / 2 + font * 0.35
        x = left + index * cell + cell / 2 + font * 0.35
        name = escape(block.label(nodes))
        out.append(f'<text class="row-label" x="{left - 4}" y="{y:.1f}" font-size="{font:.1f}" '
                   f'text-anchor="end">{name}</text>')
        out.append(f'<text class="col-label" x="{x:.1f}" y="{top - 4}" font-size="{font:.1f}" '
                   f'transform="rotate(-90 {x:.1f} {top - 4})">{name}</text>')
    for r, rows in enumerate(blocks):
        row = [_block_outcome(matrix, rows, cols) for cols in blocks]
        c = 0
        while c < side:
            run_end = c
            while run_end + 1 < side and row[run_end + 1] == row[c]:
                run_end += 1
            out.append(_cell(rows, blocks[c], blocks[run_end], row[c], palette, nodes,
                             left + c * cell, top + r * cell, (run_end - c + 1) * cell, cell))
            c = run_end + 1
    out.append(f'<rect x="{left}" y="{top}" width="{grid}" height="{grid}" fill="none" stroke="#9e9e9e"/>')
    y = top + grid + 28
    out.append(f'<text x="10" y="{y}" font-size="12" font-weight="bold">Legend</text>')
    for outcome in legend:
        y += 18
        what = _legend_text(outcome)
        out.append(f'<rect x="10" y="{y - 11}" width="14" height="14" fill="{palette[outcome]}" stroke="#757575"/>'
                   f'<text class="legend" x="30" y="{y}" font-size="12">{escape(outcome)} '
                   f'({counts[outcome]} pairs){escape(what)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _cell(rows: _Block, first: _Block, last: _Block, outcome: str | None, palette: dict[str, str],
          nodes: list[str], x: int, y: int, w: int, h: int) -> str:
    """One rectangle over receivers first..last; data-* attributes name the pairs it stands for."""
    if outcome is None:
        return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{DIAGONAL}"/>'
    receivers = first.label(nodes) if first == last else f"{nodes[first.first]} .. {nodes[last.last]}"
    tooltip = f"{rows.label(nodes)} -> {receivers}: {outcome}"
    return (f'<rect class="cell" x="{x}" y="{y}" width="{w}" height="{h}" fill="{palette[outcome]}" '
            f'stroke="#ffffff" stroke-width="{0.5 if h >= 6 else 0}" data-outcome={quoteattr(outcome)} '
            f'data-rows="{rows.first}-{rows.last}" data-cols="{first.first}-{last.last}">'
            f"<title>{escape(tooltip)}</title></rect>")


def _legend_text(outcome: str) -> str:
    if outcome in FIXED_COLOURS:
        return {PASSED: ": passed", NOT_PROBED: ": not probed", SKIPPED: ": skipped",
                FAILED: ": failed without a code"}[outcome]
    try:
        return f": {catalog.info(outcome).title}"
    except ValueError:
        return ""
