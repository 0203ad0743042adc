/* nn kernels of gdcore (filled in by the implementation). */
