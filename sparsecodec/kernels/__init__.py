"""numba kernels: plain functions over arrays, grouped by the formats that use them."""
