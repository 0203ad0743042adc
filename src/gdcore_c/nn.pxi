# Wrappers of the nn kernels.
