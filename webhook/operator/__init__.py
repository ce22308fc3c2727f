"""Operator tools over the cluster state: install, status, who-has, gc, check, adopt."""
