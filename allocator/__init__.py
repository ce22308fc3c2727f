"""Pure IPAM: address ranges, subnets, pools, MACs and parsers. No Kubernetes, no HTTP."""
