"""Provenance: which exact environment made a notebook's outputs, and how two environments differ.

stamp (the `dockyard` key of notebook metadata, stamp.schema.json) · identity (an image or a lock → a stamp)
· save_hook (Jupyter's pre-save hook, nbclient's hook) · operands (what `dockyard diff` compares) · diff
(packages added, removed, changed; CUDA called out) · history (which commit of the checkout holds a lock)
· drift (a stamp against this machine: matches, drifted, missing) · upgrade (build beside, nbval, move alias).
"""
