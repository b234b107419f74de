"""Header decoding kernels (Cython): frame bytes in, packet columns out."""
