"""dockyard: containerised deep-learning environments as Jupyter kernels and dev containers."""

__version__ = "0.1.0"
