"""SSH to the nodes: configuration, host keys, connections, the pool."""
