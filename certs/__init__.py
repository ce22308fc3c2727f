"""CA and serving certificates: generation, renewal and reload."""
