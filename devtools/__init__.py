"""Development and test tooling: the local control plane, a real node, the dev environment.

The product never imports it (an import-linter contract); `multinic-ipam dev` loads
`devtools.command` by name."""
