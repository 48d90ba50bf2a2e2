"""Every bad input gets one clear line, and a damaged run directory heals (issue 18): a table of cases, each an input
(command-line arguments on files the case makes), the message fragment the `nlmn` command must print, its exit code and
what it must leave untouched. A regression names the case that broke.

`python tests/test_bad_inputs.py` runs the table outside pytest and prints the tally: cases tried, clean errors (the
expected exit code and message, one line, no traceback) and cases that lost or changed an artifact."""
from __future__ import annotations
import contextlib, hashlib, io, json, os, re, shutil, signal, subprocess, sys, tempfile, time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nlmn  # first: it sets the OpenMP wait policy before torch loads (nbs/00_core)
import numpy as np
import torch

from nlmn.pipeline import STAGES

NLMN = [sys.executable, '-c', 'import sys; from nlmn.cli import main; sys.exit(main())']  # what the console script runs
TINY = ['--n', '200', '--preset', 'cpu-tiny', '--quiet']  # the runs the run-directory cases start from
NO_CUDA_OR_NO_SUCH = r"device cuda:99: (asked for, but this machine has no CUDA|this machine has \d+ CUDA device)"


def cli(argv:list[str]) -> tuple[int|str, str, str]:
    "Run `nlmn argv` in this process: (exit code, or 'traceback: Error' when an exception escaped; stdout; stderr)."
    from nlmn.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: main(argv); code = 0
        except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception as e: code = f"traceback: {type(e).__name__}: {str(e)[:300]}"
    return code, out.getvalue(), err.getvalue()


def snapshot(root:Path) -> dict[str, str]:
    "relative path → digest of every file under `root` (the lock file's holder line aside)."
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file() and p.name != '.lock'}


# ── inputs the cases are made of ─────────────────────────────────────────────────────────────────────────────────────
def images(n:int=60, seed:int=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)

def labels(n:int=60) -> np.ndarray: return np.arange(n) % 10

def write_npz(path:Path, **arrays): np.savez(path, images=images(), **arrays)

def label_file(path:Path, n:int=60, **changes) -> Path:
    clean = labels(n)
    d = dict(clean_label=clean, worse_label=(clean + 1) % 10, aggre_label=clean.copy(), random_label1=clean.copy())
    torch.save({k: torch.as_tensor(v) for k, v in (d | changes).items()}, path)
    return path

def good_npz(ws:Path) -> Path:
    write_npz(ws/'imgs.npz', labels=labels(), index=np.arange(60)); return ws/'imgs.npz'

def csv_dataset(ws:Path, rows:list[str], encoding:str='utf-8', header:str='path,label') -> Path:
    from PIL import Image
    for i in range(4): Image.fromarray(images(1, i)[0]).save(ws/f'im{i}.png')
    (ws/'labels.csv').write_bytes((header + '\n' + '\n'.join(rows) + '\n').encode(encoding))
    return ws/'labels.csv'

def decisions_csv(ws:Path, encoding:str) -> Path:
    (ws/'decisions.csv').write_bytes('index,decision,label\n0,relabel,é\n'.encode(encoding)); return ws/'decisions.csv'


# ── run directories (copies of two runs made once) ───────────────────────────────────────────────────────────────────
def run_copy(ws:Path, templates:Path, *, undone:tuple=()) -> Path:
    "A copy of the finished run; the stages in `undone` and those after them unfinished (their done.json removed)."
    out = ws/'run'
    shutil.copytree(templates/'finished', out)
    first = min((STAGES.index(s) for s in undone), default=len(STAGES))
    for s in STAGES[first:]:
        (out/s/'done.json').unlink(missing_ok=True)
        if s not in undone: shutil.rmtree(out/s, ignore_errors=True)  # later stages: as if never started
    if first < len(STAGES): (out/'report.md').unlink(missing_ok=True)
    return out

def edit_config(run:Path, change:Callable[[dict], None]):
    cfg = json.loads((run/'config.json').read_text()); change(cfg)
    (run/'config.json').write_text(json.dumps(cfg))

def garble(path:Path): path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])  # a truncated write

@contextlib.contextmanager
def read_only(path:Path):
    "Make `path` (a folder) and everything in it unwritable, even for root (`chattr +i`), then restore it."
    root = os.geteuid() == 0
    cmd = lambda flag: subprocess.run(['chattr', '-R', flag, str(path)], check=True, capture_output=True) if root \
        else subprocess.run(['chmod', '-R', 'a-w' if flag == '+i' else 'u+w', str(path)], check=True)
    cmd('+i')
    try:
        probe = path/'.probe'
        try: probe.touch(); probe.unlink(); raise AssertionError(f"{path}: could not be made read-only here")
        except PermissionError: pass
        yield path
    finally: cmd('-i')


# ── the table ────────────────────────────────────────────────────────────────────────────────────────────────────────
@dataclass
class Case:
    id: str # what the case is (the issue's own names where it gives them)
    make: Callable # (case folder, templates folder) → the `nlmn` arguments
    message: str # regex the error line (or, code 0, the output) must contain
    code: int = 1 # 1 bad input, 2 usage, 0 a valid input or a healed directory
    check: Callable|None = None # (case folder, snapshot before, snapshot after, output) → asserts; default: untouched
    read_only: str|None = None # a folder of the case made read-only while the command runs

def npz_data(**arrays) -> Callable:
    def make(ws, t):
        write_npz(ws/'x.npz', **arrays); return ['data', '--source', str(ws/'x.npz')]
    return make

def labelled_data(label_set='worst', classes=False, **changes) -> Callable:
    def make(ws, t):
        write_npz(ws/'x.npz', labels=labels(), index=np.arange(60),
                  **(dict(classes=np.array([f'c{i}' for i in range(10)])) if classes else {}))
        return ['data', '--source', str(ws/'x.npz'), '--label_file', str(label_file(ws/'lf.pt', **changes)),
                '--label_set', label_set]
    return make

def csv_data(rows:list[str], **kw) -> Callable:
    return lambda ws, t: ['data', '--source', str(csv_dataset(ws, rows, **kw))]

def new_run(*args:str) -> Callable:
    return lambda ws, t: ['run', *TINY, '--out', str(ws/'new'), *args]

def on_run(command:list[str], undone:tuple=(), prepare:Callable|None=None, after:list[str]=()) -> Callable:
    "`nlmn COMMAND RUN_DIR ...` on a copy of the finished run, `prepare(run)` applied first."
    def make(ws, t):
        run = run_copy(ws, t, undone=undone)
        if prepare: prepare(run)
        return [*command, str(run), *after]
    return make

def healed(moved:str, done:str) -> Callable:
    "The check of a healed directory: the bad file is in `_old/`, the stage it belongs to finished again."
    def check(ws, before, after, out):
        run = ws/'run'
        assert list((run/'_old').rglob(Path(moved).name)), f"{moved} was not set aside in _old/"
        assert (run/done/'done.json').exists(), f"stage {done} did not finish"
        lost = [p for p in before if p not in after and not p.endswith('.tmp') and p != f'run/{moved}'
                and '/done.json' not in p]
        assert not lost, f"artifacts lost: {lost}"
    return check

def no_tmp_left(ws, before, after, out):
    assert not [p for p in after if p.endswith('.tmp')], 'stale .tmp files were left'
    assert all(p in after for p in before if not p.endswith('.tmp')), 'an artifact was lost'

def unchanged_and(pattern:str) -> Callable:
    def check(ws, before, after, out):
        assert before == after, 'artifacts changed'
        assert re.search(pattern, out), out[-500:]
    return check

CASES = [
    # data files: one line naming the file and what it holds
    Case('label_file_empty', lambda ws, t: ['data', '--source', str(good_npz(ws)), '--label_file', str(_empty(ws/'e.pt')),
                                            '--label_set', 'worst'], r"e\.pt: the label file is empty \(0 bytes\)"),
    Case('label_file_missing', lambda ws, t: ['data', '--source', str(good_npz(ws)), '--label_file', str(ws/'no.pt'),
                                              '--label_set', 'worst'], r"no\.pt: label file not found"),
    Case('label_file_with_code', lambda ws, t: ['data', '--source', str(good_npz(ws)), '--label_file',
                                                str(_evil_label_file(ws)), '--label_set', 'worst'],
         r"evil\.pt: not a label file of plain arrays", check=lambda ws, b, a, o: _not_pwned(ws, b, a)),
    Case('label_set_missing', labelled_data('rand3'), r"lf\.pt: no label set 'rand3' \(key 'random_label3'\)"),
    Case('lf_range_hi', labelled_data(worse_label=np.where(labels() == 9, 10, labels())),
         r"lf\.pt: label set 'worst' \(key 'worse_label'\) has labels 0\.\.10, expected 0\.\.9 \(10 classes\)"),
    Case('lf_range_named_classes', labelled_data(classes=True, worse_label=labels() + 3),
         r"lf\.pt: label set 'worst' \(key 'worse_label'\) has labels 3\.\.12, expected 0\.\.9 \(10 classes\)"),
    Case('npz_truncated', lambda ws, t: ['data', '--source', str(_truncated(good_npz(ws)))],
         r"imgs\.npz: not a readable npz archive \(BadZipFile"),
    Case('npy_as_npz', lambda ws, t: ['data', '--source', str(_npy_named(ws/'x.npz'))],
         r"x\.npz: a single \.npy array, expected an \.npz archive"),
    Case('npy_as_test', lambda ws, t: ['data', '--source', str(good_npz(ws)), '--test', str(_npy_named(ws/'t.npy'))],
         r"t\.npy: a single \.npy array, expected an \.npz archive"),
    Case('npz_no_images', lambda ws, t: ['data', '--source', str(_no_images(ws))],
         r"x\.npz: no key 'images'"),
    Case('npz_object_array', npz_data(labels=np.array([None] * 60, dtype=object)),
         r"x\.npz: (not a readable npz archive|array 'labels' cannot be read) \(an object array, which would need pickle"),
    Case('npz_labels_hi', npz_data(labels=np.where(labels() == 9, 50, labels())),
         r"x\.npz: labels span 0\.\.50, but no image has class\(es\) 9, 10, 11, 12, 13 and 36 more"),
    Case('npz_labels_hi_named', npz_data(labels=np.where(labels() == 9, 12, labels()),
                                         classes=np.array([f'c{i}' for i in range(10)])),
         r"x\.npz: key 'labels' has labels 0\.\.12, expected 0\.\.9 \(10 classes\)"),
    Case('npz_index_float', npz_data(labels=labels(), index=np.arange(60) + 0.5),
         r"x\.npz: key 'index' must be a 1-d integer array, got float64"),
    Case('npz_index_negative', npz_data(labels=labels(), index=np.arange(60) - 1),
         r"x\.npz: key 'index' has -1, expected ≥ 0"),
    Case('npz_index_beyond_label_file', lambda ws, t: ['data', '--source', str(_indexed_npz(ws, 100)), '--label_file',
                                                        str(label_file(ws/'lf.pt')), '--label_set', 'worst'],
         r"lf\.pt: label set 'worst' \(key 'worse_label'\) has 60 labels, but the npz 'index' spans 100\.\.159"),
    Case('csv_latin1', csv_data(['im0.png,café', 'im1.png,dog'], encoding='latin-1'),
         r"labels\.csv: not UTF-8 text \(byte 0xe9 at offset \d+\); save it as UTF-8"),
    Case('csv_label_empty', csv_data(['im0.png,cat', 'im1.png,', 'im2.png,dog']),
         r"labels\.csv: empty 'label' in row\(s\) 3; every row needs a label"),
    Case('csv_path_twice', csv_data(['im0.png,cat', 'im1.png,dog', 'im0.png,dog']),
         r"labels\.csv: image\(s\) listed twice: im0\.png \(rows 2 and 4\)"),
    Case('csv_clean_label_partial', csv_data(['im0.png,cat,cat', 'im1.png,dog,'], header='path,label,clean_label'),
         r"labels\.csv: 'clean_label' is empty in row\(s\) 3; give it in every row or none"),
    Case('csv_image_missing', csv_data(['im0.png,cat', 'gone.png,dog']), r"labels\.csv: 1 listed image file\(s\) not found"),
    Case('csv_no_rows', csv_data([]), r"labels\.csv: no rows"),
    Case('csv_text_labels_are_class_names', csv_data(['im0.png,cat', 'im1.png,dog', 'im2.png,3']),
         r"classes: 3, cat, dog", code=0, check=lambda ws, b, a, o: None),
    Case('source_unknown_kind', lambda ws, t: ['data', '--source', str(ws/'x.txt')], r"unknown dataset source"),
    # data settings
    Case('synthetic_n_negative', lambda ws, t: ['data', '--n', '-5'], r"data setting n=-5: expected an integer ≥ 1"),
    Case('synthetic_n_zero', lambda ws, t: ['data', '--n', '0'], r"data setting n=0: expected an integer ≥ 1"),
    Case('noise_rate_above_1', lambda ws, t: ['data', '--noise_rate', '1.5'], r"data setting noise_rate=1\.5: expected 0 ≤ rate < 1"),
    Case('noise_kind_unknown', lambda ws, t: ['data', '--noise', 'gaussian'], r"data setting noise='gaussian': expected one of"),
    Case('num_classes_1', lambda ws, t: ['data', '--num_classes', '1'], r"data setting num_classes=1: expected an integer ≥ 2"),
    Case('difficulty_3', lambda ws, t: ['data', '--difficulty', '3'], r"data setting difficulty=3\.0: expected 0 ≤ difficulty ≤ 1"),
    Case('val_fraction_1', lambda ws, t: ['data', '--val_fraction', '1'], r"data setting val_fraction=1\.0: expected 0 ≤ fraction < 1"),
    Case('data_out_is_a_file', lambda ws, t: ['data', '--n', '50', '--out', str(_a_file(ws))], r"afile: is a file, expected a folder"),
    Case('option_not_a_number', lambda ws, t: ['data', '--n', 'many'], r"argument --n: invalid int value: 'many'", code=2),
    # run settings: refused when the configuration is resolved, before anything is written
    Case('epochs_negative', new_run('--overrides', 'pretrain.epochs=-1'), r"setting pretrain\.epochs=-1: expected ≥ 1"),
    Case('epochs_none', new_run('--overrides', 'pretrain.epochs=None'), r"setting pretrain\.epochs=None: expected an integer"),
    Case('batch_size_0', new_run('--overrides', 'pretrain.batch_size=0'), r"setting pretrain\.batch_size=0: expected ≥ 1"),
    Case('batch_unsup_0', new_run('--overrides', 'finetune.batch_unsup=0'), r"setting finetune\.batch_unsup=0: expected ≥ 1"),
    Case('lr_negative', new_run('--overrides', 'finetune.lr=-0.1'), r"setting finetune\.lr=-0\.1: expected > 0"),
    Case('threshold_2', new_run('--overrides', 'detect.threshold=2'), r"setting detect\.threshold=2\.0: expected 0 ≤ value ≤ 1"),
    Case('final_threshold_negative', new_run('--overrides', 'final_detect.threshold=-1'),
         r"setting final_detect\.threshold=-1\.0: expected 0 ≤ value ≤ 1"),
    Case('detect_method_median', new_run('--overrides', 'detect.method=median'),
         r"setting detect\.method='median': expected one of vote, rank"),
    Case('detect_k_at_least_n', new_run('--overrides', 'detect.k=5000'), r"setting detect\.k=5000: expected < 200"),
    Case('arch_unknown', new_run('--overrides', 'pretrain.arch=vgg'), r"setting pretrain\.arch='vgg': expected one of resnet34"),
    Case('tsa_unknown', new_run('--overrides', 'finetune.tsa=cosine'), r"setting finetune\.tsa='cosine': expected one of linear"),
    Case('override_not_an_integer', new_run('--overrides', 'pretrain.epochs=abc'),
         r"override 'pretrain\.epochs=abc': expected an integer"),
    Case('override_not_a_bool', new_run('--overrides', 'pretrain.tta=maybe'), r"override 'pretrain\.tta=maybe': expected true or false"),
    Case('override_unknown_setting', new_run('--overrides', 'pretrain.foo=1'), r"override 'pretrain\.foo=1': pretrain has no setting 'foo'"),
    Case('override_unknown_stage', new_run('--overrides', 'train.epochs=1'), r"override 'train\.epochs=1': unknown stage 'train'"),
    Case('override_form', new_run('--overrides', 'epochs'), r"override 'epochs': expected stage\.setting=value"),
    Case('preset_unknown', new_run('--preset', 'huge'), r"unknown preset 'huge'"),
    Case('until_unknown', new_run('--until', 'train'), r"--until train: expected one of data, pretrain"),
    Case('device_cuda_absent', new_run('--device', 'cuda:99'), NO_CUDA_OR_NO_SUCH),
    Case('device_unknown', new_run('--device', 'tpu9'), r"device 'tpu9': expected cpu, cuda, cuda:N or mps"),
    Case('out_is_a_file', lambda ws, t: ['run', *TINY, '--out', str(_a_file(ws))], r"afile: is a file, expected a run directory"),
    Case('out_not_writable', lambda ws, t: ['run', *TINY, '--out', str(_folder(ws, 'ro')/'new')],
         r"ro: cannot write there", read_only='ro'),
    Case('bench_label_set_missing', lambda ws, t: ['bench', str(good_npz(ws)), str(label_file(ws/'lf.pt')),
                                                   '--label_sets', 'worst', 'rand3', '--preset', 'cpu-tiny',
                                                   '--out', str(ws/'bench'), '--quiet'],
         r"lf\.pt: no label set 'rand3' \(key 'random_label3'\)"),
    # run directories
    Case('not_a_run_directory', lambda ws, t: ['resume', str(_folder(ws, 'empty'))], r"not an nlmn run directory \(no config\.json\)"),
    Case('run_again_without_resume', lambda ws, t: ['run', *TINY, '--out', str(run_copy(ws, t))], r"holds a run already; pass --resume"),
    Case('resume_other_settings', lambda ws, t: ['run', *TINY, '--out', str(run_copy(ws, t)), '--resume', '--overrides',
                                                 'pretrain.epochs=9'], r"holds a run of another configuration \(pretrain\.epochs"),
    Case('config_extra_key', on_run(['resume'], prepare=lambda r: edit_config(r, lambda c: c['pretrain'].update(extra=1))),
         r"config\.json: unknown setting\(s\) pretrain\.extra"),
    Case('config_extra_top_key', on_run(['resume'], prepare=lambda r: edit_config(r, lambda c: c.update(notes='x'))),
         r"config\.json: unknown key\(s\) \['notes'\]"),
    Case('config_bad_value', on_run(['resume'], prepare=lambda r: edit_config(r, lambda c: c['detect'].update(k=-3))),
         r"config\.json: setting detect\.k=-3: expected ≥ 2"),
    Case('config_not_json', on_run(['resume'], prepare=lambda r: garble(r/'config.json')), r"config\.json: not valid JSON"),
    Case('config_older_version', on_run(['resume'], prepare=lambda r: edit_config(r, lambda c: c.update(version=2))),
         r"config\.json: made by another nlmn version"),
    Case('decisions_latin1', on_run(['run', *TINY, '--resume', '--until', 'detect', '--out'],
                                    prepare=lambda r: decisions_csv(r.parent, 'latin-1'),
                                    after=['--decisions', '{ws}/decisions.csv']),
         r"decisions\.csv: not UTF-8 text \(byte 0xe9"),
    Case('resume_mid_run_read_only', on_run(['resume'], undone=('finetune',)), r"run: cannot write there", read_only='run'),
    Case('report_read_only', on_run(['report']), r"run: cannot write there", read_only='run'),
    Case('resume_finished_read_only', on_run(['resume']), r"stage 4 fine-tuned: test accuracy", code=0,
         read_only='run', check=lambda ws, b, a, o: None),
    # damaged run directories heal: the bad file moves to _old/, the stage runs again, nothing finished is lost
    Case('features_corrupt', on_run(['resume', '--quiet', '--until', 'features'], undone=('features',),
                                    prepare=lambda r: garble(r/'features'/'features.npz')),
         r"features\.npz: not a readable npz archive .*moved it to .*_old", code=0,
         check=healed('features/features.npz', 'features')),
    Case('round_corrupt', on_run(['resume', '--quiet', '--until', 'detect'], undone=('detect',),
                                 prepare=lambda r: garble(r/'detect'/'rounds'/'round_00.npz')),
         r"round_00\.npz: not a readable npz archive .*moved it to .*_old", code=0,
         check=healed('detect/rounds/round_00.npz', 'detect')),
    Case('checkpoint_corrupt', on_run(['resume', '--quiet', '--until', 'pretrain'], undone=('pretrain',),
                                      prepare=lambda r: garble(r/'pretrain'/'checkpoint.pt')),
         r"checkpoint\.pt: not a torch file .*moved it to .*_old", code=0,
         check=healed('pretrain/checkpoint.pt', 'pretrain')),
    Case('done_json_corrupt', on_run(['resume', '--quiet'], prepare=lambda r: garble(r/'report'/'done.json')),
         r"done\.json: not valid JSON .*moved it to .*_old", code=0, check=healed('report/done.json', 'report')),
    Case('stale_tmp_files', on_run(['resume', '--quiet'], undone=('report',),
                                   prepare=lambda r: [(r/d/'.x.npz.abc123.tmp').write_bytes(b'0' * 100)
                                                      for d in ('pretrain', 'detect', 'features')]),
         r"", code=0, check=no_tmp_left),
]

def _evil_label_file(ws:Path) -> Path:
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {ws}/pwned',))
    torch.save({'clean_label': Evil()}, ws/'evil.pt'); return ws/'evil.pt'

def _not_pwned(ws, before, after):
    assert not (ws/'pwned').exists(), 'the pickled code ran'
    assert before == after

def _empty(path:Path) -> Path: path.write_bytes(b''); return path
def _truncated(path:Path) -> Path: garble(path); return path
def _npy_named(path:Path) -> Path:
    with open(path, 'wb') as f: np.save(f, images())
    return path
def _no_images(ws:Path) -> Path: np.savez(ws/'x.npz', labels=labels()); return ws/'x.npz'
def _indexed_npz(ws:Path, start:int) -> Path:
    write_npz(ws/'x.npz', labels=labels(), index=np.arange(start, start + 60)); return ws/'x.npz'
def _a_file(ws:Path) -> Path: (ws/'afile').write_text('x'); return ws/'afile'
def _folder(ws:Path, name:str) -> Path: (ws/name).mkdir(exist_ok=True); return ws/name


def make_templates(root:Path) -> Path:
    "The finished run every run-directory case copies (cpu-tiny, 200 synthetic images)."
    r = subprocess.run(NLMN + ['run', *TINY, '--out', str(root/'finished')], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return root


def run_case(case:Case, ws:Path, templates:Path) -> dict:
    "Run one case in its folder `ws`; what happened, and what was wrong with it (empty: the case passed)."
    argv = [a.replace('{ws}', str(ws)) for a in case.make(ws, templates)]
    before = snapshot(ws)
    with read_only(ws/case.read_only) if case.read_only else contextlib.nullcontext():
        code, out, err = cli(argv)
    after, problems = snapshot(ws), []
    lines = [l for l in err.splitlines() if l.strip()]
    if isinstance(code, str): problems.append(code)
    elif code != case.code: problems.append(f"exit code {code}, expected {case.code}: {err.strip()[-300:]}")
    if case.code and not isinstance(code, str):
        if len(lines) != 1 and case.code == 1: problems.append(f"{len(lines)} lines on stderr, expected one: {err[-300:]}")
        if not re.search(case.message, err): problems.append(f"message {err.strip()[-300:]!r} lacks /{case.message}/")
    elif not isinstance(code, str) and case.message and not re.search(case.message, out + err):
        problems.append(f"output lacks /{case.message}/: {(out + err)[-300:]!r}")
    lost = False
    try:
        if case.check: case.check(ws, before, after, out + err)
        else:
            assert before == after, f"changed: {sorted(set(before.items()) ^ set(after.items()))[:4]}"
            assert not (ws/'new').exists() and not (ws/'bench').exists(), 'a failed run left a run directory'
    except AssertionError as e: problems.append(f"artifacts: {e}"); lost = True
    return dict(id=case.id, code=code, err=err.strip(), problems=problems, lost=lost)


# ── pytest ───────────────────────────────────────────────────────────────────────────────────────────────────────────
import pytest

@pytest.fixture(scope='module')
def templates(tmp_path_factory): return make_templates(tmp_path_factory.mktemp('templates'))

@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input(case, templates, tmp_path):
    result = run_case(case, tmp_path, templates)
    assert not result['problems'], '\n'.join(result['problems'])


def test_a_second_process_on_a_run_directory_is_refused_at_once_naming_the_first(tmp_path):
    "Two `nlmn run` on one --out: the second stops at once naming the first's PID; a killed holder leaves no lock."
    out = tmp_path/'busy'
    first = subprocess.Popen(NLMN + ['run', *TINY, '--overrides', 'pretrain.epochs=40', '--out', str(out)],
                             stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (out/'pretrain'/'metrics.jsonl').exists():  # it holds the directory and trains
            assert first.poll() is None and time.time() < deadline, 'the first run ended early'
            time.sleep(0.1)
        for argv in (['run', *TINY, '--overrides', 'pretrain.epochs=40', '--out', str(out), '--resume'],
                     ['run', *TINY, '--out', str(out), '--resume'], ['resume', str(out)]):
            t0 = time.time(); code, _, err = cli(argv)
            assert code == 1 and f"in use by process {first.pid} on " in err, err
            assert time.time() - t0 < 30, 'it was not refused at once'
    finally:
        first.send_signal(signal.SIGKILL); first.wait()
    code, _, err = cli(['resume', str(out), '--until', 'data', '--quiet'])  # the dead process's lock is gone
    assert code == 0, err


def test_metrics_appends_lose_no_record(tmp_path):
    "Appends from two processes at once (the old read-modify-write lost records): every record is there."
    from nlmn.core import read_jsonl
    path = tmp_path/'metrics.jsonl'
    code = ("import sys; from nlmn.core import append_jsonl\n"
            "for i in range(200): append_jsonl(sys.argv[1], dict(writer=sys.argv[2], i=i))")
    procs = [subprocess.Popen([sys.executable, '-c', code, str(path), w]) for w in 'ab']
    assert all(p.wait() == 0 for p in procs)
    records = read_jsonl(path)
    assert sorted((r['writer'], r['i']) for r in records) == [(w, i) for w in 'ab' for i in range(200)]


# ── the tally, outside pytest ────────────────────────────────────────────────────────────────────────────────────────
if __name__ == '__main__':
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp); templates = make_templates(tmp/'templates')
        results = []
        for i, case in enumerate(CASES):
            (ws := tmp/f'case{i:02d}').mkdir()
            try: results.append(run_case(case, ws, templates))
            except Exception as e: results.append(dict(id=case.id, problems=[f'harness: {type(e).__name__}: {e}'], lost=False))
    tracebacks = sum(any(str(p).startswith('traceback') for p in r['problems']) for r in results)
    print(f"cases tried: {len(results)}; clean: {sum(not r['problems'] for r in results)}; "
          f"tracebacks: {tracebacks}; artifacts lost or changed: {sum(r['lost'] for r in results)}")
    for r in results:
        if r['problems']: print(f"- {r['id']}: {r['problems'][0][:220]}")
