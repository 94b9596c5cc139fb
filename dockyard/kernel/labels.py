"""Labels on kernel containers: what the provisioner writes and what the reaper and `dockyard kernels` read."""

LABEL_KERNEL_ID = "org.dockyard.kernel-id"
LABEL_ENV = "org.dockyard.env"
LABEL_VARIANT = "org.dockyard.variant"
# "HOST:PID:START" of the process that owns the kernel (see reaper.owner_id); never any secret.
LABEL_OWNER = "org.dockyard.owner"
