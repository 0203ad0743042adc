# Wrappers of the optim kernels.
