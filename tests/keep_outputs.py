"""`python tests/keep_outputs.py nbs/NN_x.ipynb ...` (from the project root), then `nbdev_clean`: run each notebook top
to bottom (every cell, as Run-All) in its folder and keep the outputs a reader wants: figures (PNG), markdown/HTML
tables and API docs, printed results; drop progress bars (stderr), widget views (they need a live kernel: the
notebooks show screenshots instead) and execution counts. Not a test: it makes the outputs the notebooks keep, so that
a reader on GitHub sees the figures."""
import os, sys, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

WIDGET = 'application/vnd.jupyter.widget-view+json'

def keep(o) -> bool:
    if o.get('output_type') == 'stream': return o.get('name') == 'stdout'
    if o.get('output_type') == 'error': raise RuntimeError(f"{o.get('ename')}: {o.get('evalue')}")
    return WIDGET not in o.get('data', {})

for p in map(Path, sys.argv[1:]):
    t, cwd = time.time(), os.getcwd()
    nb = read_nb(p)
    os.chdir(p.parent)
    try: CaptureShell(mpl_format='png').run_all(nb, exc_stop=True)
    finally: os.chdir(cwd)
    for c in nb.cells:
        if c.cell_type != 'code': continue
        c.outputs = [o for o in c.get('outputs', []) if keep(o)]
        for o in c.outputs: o.pop('execution_count', None)
        c.execution_count = None
    write_nb(nb, p)
    print(f'{p}: ran in {time.time() - t:.0f} s, {p.stat().st_size / 1e3:.0f} kB')
