"""Reading the nodes and the cluster view: facts, parsers, view, the gathering phase."""
