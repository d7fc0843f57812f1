"""Issue 20, runner side: what one node prints can neither stall the runner nor get into the reports as
markup. Unit tests on the real parsers and renderers with crafted input."""

from __future__ import annotations

import time

from vxlan_conformance.collect import facts


def test_facts_sections_parse_in_linear_time_with_thousands_of_unclosed_markers() -> None:
    junk = "".join(f"@@vxc@@ s{i}\n" + "x" * 240 + "\n" for i in range(4000))  # ~1 MB, nothing closed
    output = junk + "@@vxc@@ uname_r\n6.1.0\n\n@@vxc@@ uname_r rc=0\n"
    started = time.perf_counter()
    sections = facts.split_sections(output)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, elapsed
    assert list(sections) == ["uname_r"]
    assert sections["uname_r"].body == "6.1.0\n" and sections["uname_r"].rc == 0


def test_facts_sections_keep_their_bodies_exactly() -> None:
    output = ("banner\n@@vxc@@ a\nline1\nline2\n\n@@vxc@@ a rc=0\n@@vxc@@ empty\n\n@@vxc@@ empty rc=1\n"
              "@@vxc@@ b\nno trailing newline\n@@vxc@@ b rc=127\n")
    sections = facts.split_sections(output)
    assert {name: (s.body, s.rc) for name, s in sections.items()} == {
        "a": ("line1\nline2\n", 0), "empty": ("", 1), "b": ("no trailing newline", 127)}
