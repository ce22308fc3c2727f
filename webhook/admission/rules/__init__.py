"""Validating admission rules, one module per kind; `webhook.validate` dispatches to them."""
