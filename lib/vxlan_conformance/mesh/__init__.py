"""Real traffic between every directed pair: agents, frames, evidence."""
