"""The `kube-ovn` CNI plugin (standard library only) and the node daemon that answers it."""
