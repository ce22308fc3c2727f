"""Subcommands of `multinic-ipam`.

Each module here exposes `register(subparsers) -> None`, which adds one subcommand and sets
`func=run` on it. Modules import heavy dependencies inside `run`, so `--help` stays fast.
"""
