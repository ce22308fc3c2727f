"""Cluster state: the way to the API server, the cache informers fill, read-only views, and the
store (IP objects as locks, the per-Subnet allocators) over them."""
