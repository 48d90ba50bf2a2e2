__version__ = "0.1.0"

# Before torch loads its OpenMP runtime (libgomp reads these once, at load): idle OpenMP threads spin only briefly
# before they sleep. With libgomp's default spin-wait a 2-thread training loop on 2 cores ran 3.5x slower as soon as
# another process took one core; a short spin keeps the speed alone and most of it on a busy machine, where
# OMP_WAIT_POLICY=PASSIVE costs ~20% alone (benchmarks/bench_threads.py, nbs/00_core). numba's OpenMP layer (UMAP)
# reads the same variable. A wait policy or spin count you set yourself wins.
import os as _os, sys as _sys
if 'OMP_WAIT_POLICY' not in _os.environ and 'GOMP_SPINCOUNT' not in _os.environ:
    if 'torch' in _sys.modules:
        import warnings as _warnings
        _warnings.warn("nlmn: torch was imported before nlmn, so its OpenMP threads spin-wait; on a busy CPU training "
                       "can run several times slower. Import nlmn first, or set GOMP_SPINCOUNT=1000 before starting "
                       "Python.", stacklevel=2)
    else: _os.environ['GOMP_SPINCOUNT'] = '1000'
