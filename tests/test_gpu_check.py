"""`benchmarks/gpu_check.py --device cpu`, the CI-sized form of the GPU check: every stage timed, a projection printed."""
import subprocess, sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1]/'benchmarks'/'gpu_check.py'


def test_gpu_check_runs_every_stage_on_the_cpu():
    r = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu', '--n', '256', '--knn_n', '1000'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [l for l in r.stdout.splitlines() if l.startswith('| cpu |')]
    assert len(rows) >= 1, r.stdout  # fp32, plus bf16 rows where the CPU has bf16
    cells = [c.strip() for c in rows[0].strip('|').split('|')]
    assert cells[:4] == ['cpu', 'fastnet_tiny', 'fp32', 'off']
    rates = [float(c.replace(',', '')) for c in cells[4:10]]  # warm-up, loss pass, DivideMix, features, finetune, k-NN s
    assert all(v > 0 for v in rates), cells
    minutes = [float(v) for v in cells[10].split(' / ')]
    assert len(minutes) == 6 and abs(sum(minutes[:5]) - minutes[5]) < 0.2, minutes  # the stages add up to the total
