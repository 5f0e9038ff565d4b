# Sourced by the side-by-side scripts: says which BLAS Debian's PyTorch (the upstream side) loads. It takes the
# libblas.so.3 alternative: the reference (netlib) BLAS unless OpenBLAS is installed, ~20x slower
# (measured: 8 ViT-B/32 images 20.4 s vs 1.14 s with OpenBLAS), which would make any comparison meaningless.
blas=$(/usr/bin/python3 -c 'import torch; print(open("/proc/self/maps").read())' | grep -o '/[^ ]*libblas[^ ]*' | head -n 1)
echo "upstream side's BLAS: ${blas:-unknown}"
case "$blas" in *openblas*) ;; *) echo "warning: not OpenBLAS; for a fair comparison: apt-get install libopenblas0-pthread" >&2 ;; esac
