"""Admission webhooks (validating and mutating), their Kubernetes-backed store and the operator CLI."""
