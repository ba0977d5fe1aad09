"""tfcs3 retrieval."""
