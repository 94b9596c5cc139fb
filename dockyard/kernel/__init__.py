"""Container kernels: kernelspecs, the Docker provisioner and the reaper of leftover containers."""
