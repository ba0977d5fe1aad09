"""tfcs3 export."""
