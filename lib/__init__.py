"""vxlan-conformance: all logic of the suite (the suites/ tests stay thin)."""
