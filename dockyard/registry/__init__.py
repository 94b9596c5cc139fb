"""Sharing images through a registry: build once, every teammate and every node pulls (docs/registry.md).

- naming.py: the registry's names of an image (content tag and alias under HOST/PREFIX/)
- credentials.py: Docker's own config and credential store, read for a host (never a file of ours)
- probe.py: dockyard's own look at the registry (reachable? TLS with the site CA? credentials accepted?)
- refusals.py: the engine's words for a failed push or pull → one paragraph with the fix
- verify.py: a pulled image's labels against the spec and lock of this checkout (no I/O)
- transfer.py: push and pull through the engine (the docker SDK), nothing half-pulled left tagged
"""
