"""What the plugin accepts in a network config, for the webhook to refuse the rest at NAD admission.

The plugin (`cni.config`) enforces these when a sandbox is created; `allocator.nad` enforces them when
the NetworkAttachmentDefinition is applied, so whatever the webhook admits the plugin accepts. One
copy, here: standard library only and no imports, which is why both sides may import it (the one
exception in the import-linter contracts of pyproject.toml).
"""

from __future__ import annotations

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_VERSION = "0.3.0"  # what a config without cniVersion (or with an empty one) is read as
MIN_MTU, MAX_MTU = 68, 65535


def effective_version(value: object) -> object:
    """The cniVersion the plugin reads from a config's `cniVersion` value (absent or empty: the default)."""
    return value or DEFAULT_VERSION


def mtu_ok(value: object) -> bool:
    """An `mtu` the plugin accepts: absent, or an integer link MTU."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool)
                             and MIN_MTU <= value <= MAX_MTU)
