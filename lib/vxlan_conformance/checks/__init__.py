"""The checks: pure functions from the run's shared data to CheckResult, one module per concern.

Each function names its check id (used in summary.json) and the codes of lib/vxlan_conformance/data/checks.yaml.
"""
