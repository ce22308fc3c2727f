"""Owner → values maps (addresses or MACs of one owner): one int for the usual single value, a
tuple otherwise, so a subnet of a million single-address pods stores no million tuples."""

from __future__ import annotations

Owned = int | tuple[int, ...]


def _values(owned: Owned | None) -> tuple[int, ...]:
    """Every value of an owner, in the order it took them."""
    if owned is None:
        return ()
    return (owned,) if isinstance(owned, int) else owned


def first_owned(owned: Owned) -> int:
    """The value the owner took first."""
    return owned if isinstance(owned, int) else owned[0]


def add_owned(mapping: dict[str, Owned], owner: str, value: int) -> None:
    """Record one more value of ``owner``."""
    owned = mapping.get(owner)
    mapping[owner] = value if owned is None else (*_values(owned), value)


def drop_owned(mapping: dict[str, Owned], owner: str, value: int) -> None:
    """Forget one value of ``owner``; the owner goes when it has none left."""
    owned = mapping.get(owner)
    if owned == value:
        del mapping[owner]
        return
    rest = tuple(item for item in _values(owned) if item != value)
    if not rest:
        mapping.pop(owner, None)
    else:
        mapping[owner] = rest[0] if len(rest) == 1 else rest
