"""Fixtures for every test: the control plane (`tests/fixtures/controlplane.py`), the webhook
server (`tests/fixtures/webhook.py`) and two replicas behind haproxy (`tests/fixtures/replicas.py`),
loaded as plugins so each stays in its own module."""

pytest_plugins = ["tests.fixtures.controlplane", "tests.fixtures.webhook", "tests.fixtures.replicas"]
