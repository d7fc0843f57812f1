"""vxlan-conformance: all logic of the suite (the suites/ tests stay thin).

Layers, lowest first; a module imports only from its own layer and the ones below (tests/unit/test_layers.py):
model -> catalog -> cni -> inventory, transport -> collect, mesh, agent -> checks -> report -> plugin.
lab/ and demo stand apart: the embedded lab imports none of the suite, demo drives both.
"""

from pathlib import Path

# The project checkout this package is installed from (pip install -e .): suites/, reports/, inventory/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUITES_DIR = PROJECT_ROOT / "suites"
