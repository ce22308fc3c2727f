"""Typed errors of the pure core. Each message is one sentence a person can act on:
what is wrong, the offending value, and what would be accepted."""

from __future__ import annotations


class AllocatorError(Exception):
    """Base of every error the allocator and the parsers raise."""


class InvalidCIDR(AllocatorError):  # noqa: N818 - the names of STYLE.md's error hierarchy
    """A CIDR block that is malformed, not canonical, or not allowed for a subnet."""


class InvalidAddress(AllocatorError):  # noqa: N818 - the names of STYLE.md's error hierarchy
    """An address, range or gateway that does not parse or does not fit its subnet."""


class InvalidMAC(InvalidAddress):
    """A MAC address that is malformed, multicast or otherwise unusable."""


class OutOfRange(AllocatorError):  # noqa: N818 - the names of STYLE.md's error hierarchy
    """A requested address that lies outside the subnet's CIDR blocks."""


class AddressConflict(AllocatorError):  # noqa: N818 - the names of STYLE.md's error hierarchy
    """A requested address or MAC that is the gateway or already held by another owner."""

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class PoolExhausted(AllocatorError):  # noqa: N818 - the names of STYLE.md's error hierarchy
    """Every entry of an IP pool is held."""


class SubnetExhausted(PoolExhausted):
    """No free address is left in a subnet (for the family asked for)."""


class ParseError(AllocatorError):
    """An annotation or configuration value that cannot be understood."""


class NadError(ParseError):
    """A NetworkAttachmentDefinition whose config cannot be used with this IPAM."""


class NetworkSelectionError(ParseError):
    """A Multus network selection annotation that does not parse."""


class RoutesError(ParseError):
    """A `routes` annotation that does not parse."""


class PoolSpecError(ParseError):
    """An `ip_pool` annotation that does not parse."""
