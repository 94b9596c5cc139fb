"""Label names dockyard writes: on images (build) and on kernel containers (provisioner, reaper)."""

# On images and kernel containers.

LABEL_ENV = "org.dockyard.env"
LABEL_VARIANT = "org.dockyard.variant"
# On images only.
LABEL_HASH = "org.dockyard.hash"
LABEL_GPU = "org.dockyard.gpu"
# What a notebook stamp needs from an image (provenance/identity.py), so it never depends on the checkout's
# current lock: sha256 of the lock's text, the framework as NAME==VERSION, the CUDA wheels as a JSON object.
LABEL_LOCK_SHA256 = "org.dockyard.lock-sha256"
LABEL_FRAMEWORK = "org.dockyard.framework"
LABEL_CUDA_WHEELS = "org.dockyard.cuda-wheels"
# On kernel containers only.
LABEL_KERNEL_ID = "org.dockyard.kernel-id"
# "HOST:PID:START" of the process that owns the kernel (see reaper.owner_id); never any secret.
LABEL_OWNER = "org.dockyard.owner"
# On build lock containers only (see images/build_mutex.py): the tag being built, and who builds it.
LABEL_BUILD_LOCK = "org.dockyard.build-lock"
LABEL_BUILD_LOCK_OWNER = "org.dockyard.build-lock-owner"
# On pooled kernel containers only (kernel/pool/pooled.py): what kernels may claim it (a hash of everything fixed at
# creation), and its run directory on the host (connection file, claim FIFO; private to the user).
LABEL_POOL_KEY = "org.dockyard.pool-key"
LABEL_POOL_DIR = "org.dockyard.pool-dir"
# On GPU probe containers only (gpu/probe.py): throwaway, removed after the probe.
LABEL_GPU_PROBE = "org.dockyard.gpu-probe"
