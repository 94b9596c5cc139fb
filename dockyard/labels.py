"""Label names dockyard writes: on images (build) and on kernel containers (provisioner, reaper)."""

# On images and kernel containers.

LABEL_ENV = "org.dockyard.env"
LABEL_VARIANT = "org.dockyard.variant"
# On images only.
LABEL_HASH = "org.dockyard.hash"
LABEL_GPU = "org.dockyard.gpu"
# sha256 of the lock file the image installed (registry/verify.py checks it, with LABEL_HASH, before a pulled image
# is used).
LABEL_LOCK_SHA256 = "org.dockyard.lock-sha256"
# What a notebook stamp needs besides (provenance/identity.py), so it never depends on the checkout's current
# lock: the framework as NAME==VERSION, the lock's CUDA wheels as a JSON object.
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
# On GPU lease containers only (gpu/ledger.py): created, never started; the engine's name uniqueness is the lease.
LABEL_GPU_LEASE = "org.dockyard.gpu-lease"  # the device's UUID
LABEL_GPU_LEASE_MODE = "org.dockyard.gpu-lease-mode"  # "exclusive" or "shared"
LABEL_GPU_LEASE_KERNEL = "org.dockyard.gpu-lease-kernel"  # kernel id
LABEL_GPU_LEASE_CONTAINER = "org.dockyard.gpu-lease-container"  # the kernel's container name
LABEL_GPU_LEASE_NOTEBOOK = "org.dockyard.gpu-lease-notebook"  # the session's path (JPY_SESSION_NAME), may be ""
LABEL_GPU_LEASE_USER = "org.dockyard.gpu-lease-user"
LABEL_GPU_LEASE_ENV = "org.dockyard.gpu-lease-env"  # env:variant
LABEL_GPU_LEASE_SINCE = "org.dockyard.gpu-lease-since"  # epoch seconds
# On GPU queue tickets only (gpu/ledger.py): the time the waiter joined, in nanoseconds (FIFO order).
LABEL_GPU_QUEUE = "org.dockyard.gpu-queue"
