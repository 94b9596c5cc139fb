"""The warm kernel pool (docs/pool.md).

- pooled.py: pooled containers: fill, atomic claim, list, drain (the engine and run-directory side)
- keeper.py: keeps the pool topped up in a background thread of the process that starts kernels
- pool_kernel.py: runs INSIDE a pooled container (the image's Python; standard library and ipykernel only)
"""
