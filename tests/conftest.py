"""Fixtures for every test: the control plane (`tests/fixtures/controlplane.py`) and the webhook
server (`tests/fixtures/webhook.py`), loaded as plugins so each stays in its own module."""

pytest_plugins = ["tests.fixtures.controlplane", "tests.fixtures.webhook"]
