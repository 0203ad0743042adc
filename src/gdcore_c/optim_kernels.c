/* optim kernels of gdcore (filled in by the implementation). */
