"""End to end in a real browser: JupyterLab and headless Chromium (driven by Playwright) run a notebook with a review
browser; clicks land in decisions.csv."""
import contextlib, html, importlib.util, json, os, re, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

DEMO = '''
import torch.nn.functional as F
from nlmn.data import inject_noise, synthetic_dataset
from nlmn.simifeat import SimiFeatConfig, fixed_feature_rounds, simifeat
from nlmn.review import ReviewBrowser
ds = inject_noise(synthetic_dataset(400, seed=0), 'instance', 0.3, seed=0)
det = simifeat(fixed_feature_rounds(F.avg_pool2d(ds.images.float(), 4).flatten(1), seed=0), ds.noisy_labels,
               num_classes=ds.num_classes, cfg=SimiFeatConfig(rounds=5), quiet=True)
det.save({folder!r} + '/detection.npz')
ReviewBrowser(ds, det, {folder!r} + '/decisions.csv')
'''


def skip_without_browser():
    "Skip (with the reason) where Debian's Chromium or the playwright package is missing; CI installs both."
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: the browser test needs Debian's Chromium (apt-get install -y chromium); "
                    "Playwright's own browsers are not used")
    if importlib.util.find_spec('playwright') is None:
        pytest.skip("the playwright package is not installed (pip install playwright)")


def write_notebook(path:Path, *sources:str):
    "A minimal nbformat 4.5 notebook with one code cell per source."
    cells = [dict(cell_type='code', id=f'c{i}', metadata={}, source=s.strip(), outputs=[], execution_count=None)
             for i, s in enumerate(sources)]
    meta = dict(kernelspec=dict(display_name='python3', language='python', name='python3'))
    path.write_text(json.dumps(dict(cells=cells, metadata=meta, nbformat=4, nbformat_minor=5)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _stop(proc:subprocess.Popen):
    "Stop the server and every process it started (its kernels run in sessions of their own), by PID."
    import psutil
    children = []
    with contextlib.suppress(psutil.NoSuchProcess): children = psutil.Process(proc.pid).children(recursive=True)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down, then exits
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill(); child.wait(10)


@contextlib.contextmanager
def jupyter_lab(root:Path, # the folder JupyterLab serves
                home:Path, # a temporary HOME, so that ~/.jupyter stays untouched
               ):
    """A JupyterLab server on 127.0.0.1 without token or password; yields its URL and stops it (and its kernels)
    afterwards."""
    settings = (home/'.jupyter'/'lab'/'user-settings'/'@jupyterlab'/'apputils-extension'/
                'notification.jupyterlab-settings')
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({'fetchNews': 'false'}))
    port = _free_port()
    env = ({k: v for k, v in os.environ.items() if not k.startswith(('JUPYTER', 'NLMN_'))}  # a user's defaults
           | dict(HOME=str(home), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"))
    log = home/'jupyterlab.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--allow-root',
                                 '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}', '--ServerApp.port_retries=0',
                                 "--IdentityProvider.token=", "--ServerApp.password=",
                                 '--LabApp.expose_app_in_browser=True', f'--ServerApp.root_dir={root}'],
                                cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url, deadline = f'http://127.0.0.1:{port}', time.time() + 90
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f'{url}/api/status', timeout=2).status == 200: break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"JupyterLab did not start (exit code {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally: _stop(proc)


@contextlib.contextmanager
def chromium():
    "Headless Debian Chromium, driven by Playwright."
    skip_without_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try: yield browser
        finally: browser.close()


@contextlib.contextmanager
def chromium_page(width:int=1500, height:int=1900):
    "A page of headless Debian Chromium."
    with chromium() as browser: yield browser.new_page(viewport=dict(width=width, height=height))


def run_notebook(page, url:str, name:str, timeout_s:float=120):
    "Open notebook `name` in JupyterLab (a fresh workspace), wait for its kernel, and run all its cells."
    page.goto(f'{url}/lab/tree/{name}?reset')
    page.wait_for_function("""() => { const w = window.jupyterapp?.shell?.currentWidget;
        return w?.sessionContext?.session?.kernel?.status === 'idle'; }""", timeout=timeout_s * 1000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def caption_position(tile) -> int:
    "The dataset position a tile shows ('#123' in its caption)."
    return int(re.search(r'#(\d+)', tile.locator('.nlmn-caption').inner_text()).group(1))


def shown_text(tile) -> str:
    "The text of a Python-side tile's caption, as the page should show it (whitespace collapsed)."
    return ' '.join(html.unescape(re.sub(r'<[^>]+>', ' ', tile.caption.value)).split())


def test_review_browser_in_jupyterlab(tmp_path):
    skip_without_browser()
    from playwright.sync_api import expect
    from nlmn.core import load_csv
    from nlmn.data import inject_noise, synthetic_dataset
    from nlmn.review import ReviewBrowser, load_decisions, review_summary
    from nlmn.simifeat import Detection
    ds = inject_noise(synthetic_dataset(400, seed=0), 'instance', 0.3, seed=0)  # the kernel's dataset (DEMO), here too
    root, home = tmp_path/'lab', tmp_path/'home'
    root.mkdir(); home.mkdir()
    write_notebook(root/'demo.ipynb', DEMO.format(folder=str(root)))
    t0 = time.perf_counter()
    with jupyter_lab(root, home) as url, chromium_page(height=3000) as page:  # tall: the picture shows the whole widget
        run_notebook(page, url, 'demo.ipynb')
        out = page.locator('.jp-OutputArea-output')
        tiles = out.locator('.nlmn-tile')
        expect(tiles).to_have_count(16, timeout=120_000)
        expect(out.locator('.nlmn-page')).to_contain_text('page 1 of', timeout=30_000)
        expect(tiles.nth(0).locator('img')).to_be_visible()
        det = Detection.load(root/'detection.npz')  # saved by the kernel before it showed the browser
        def same_as_python(py:ReviewBrowser, n:int):
            """The page shows what a browser opened here, on the same data and file, computes: counter, page, first `n`
            captions."""
            expect(out.locator('.nlmn-counter')).to_have_text(re.sub(r'<[^>]+>', '', py.counter.value))
            expect(out.locator('.nlmn-page')).to_have_text(py.page_label.value)
            for k in range(n):
                expect(tiles.nth(k).locator('.nlmn-caption')).to_have_text(shown_text(py.tiles[k]), use_inner_text=True)
        # no file yet: nothing decided, clean labels hidden
        same_as_python(ReviewBrowser(ds, det, root/'decisions.csv'), 16)
        assert 'clean:' not in tiles.nth(0).inner_text()

        first, second, third = (tiles.nth(k) for k in range(3))
        pos = [caption_position(t) for t in (first, second, third)]
        new = next(k for k in range(ds.num_classes)
                   if k not in (int(ds.noisy_labels[pos[1]]), int(det.suggested[pos[1]])))
        first.get_by_role('button', name='accept', exact=True).click()
        expect(first.locator('.nlmn-caption')).to_contain_text('decision: accept')
        second.locator('select').select_option(label=ds.classes[new])
        expect(second.locator('.nlmn-caption')).to_contain_text('decision: relabel')
        third.get_by_role('button', name='drop', exact=True).click()
        expect(third.locator('.nlmn-caption')).to_contain_text('decision: drop')
        assert load_decisions(root/'decisions.csv', ds) == {
            pos[0]: ('accept', int(det.suggested[pos[0]])), pos[1]: ('relabel', new), pos[2]: ('drop', None)}
        py = ReviewBrowser(ds, det, root/'decisions.csv')  # what the file holds, shown by Python
        same_as_python(py, 16)
        out.get_by_role('button', name='show clean labels').click()
        py.show_truth.value = True
        same_as_python(py, 16)
        assert 'clean:' in first.inner_text()
        cells = ['—' if v is None else str(v)
                 for r in review_summary(root/'decisions.csv', ds, det) for v in r.values()]
        expect(out.locator('table.nlmn-summary td')).to_have_text(cells)
        save_screenshot(out.locator('.nlmn-review').first, (PICTURES or tmp_path)/'review.png')

        out.get_by_role('button', name='next ▶').click()
        expect(out.locator('.nlmn-page')).to_contain_text('page 2 of')
        assert caption_position(first) not in pos
        expect(first.locator('.nlmn-caption')).to_contain_text('undecided')

        rows = {int(r['index']): r for r in load_csv(root/'decisions.csv')}
        assert {i: (r['decision'], r['label_name']) for i, r in rows.items()} == {
            pos[0]: ('accept', ds.classes[det.suggested[pos[0]]]), pos[1]: ('relabel', ds.classes[new]),
            pos[2]: ('drop', '')}
        assert all(r['original_index'] == str(int(ds.indices[i])) and r['time'] for i, r in rows.items())
        py = ReviewBrowser(ds, det, root/'decisions.csv')
        assert pos == sorted(pos, key=lambda p: (det.score[p], -py.margin[p], p))  # most suspicious first, then margin
    print(f"browser test: {time.perf_counter() - t0:.1f} s, screenshot {(PICTURES or tmp_path)/'review.png'}")


NBS = Path(__file__).parent.parent/'nbs'
# notebook → the widget it must show after Run-All, and the name of its picture (the review browser's is taken by
# test_review_browser_in_jupyterlab, after some decisions)
WIDGETS = {'05_representations.ipynb': ('.nlmn-explorer', 'explorer.png'), '07_review.ipynb': ('.nlmn-tile', None)}
PICTURES = Path(os.environ.get('NLMN_SCREENSHOTS', '')) if os.environ.get('NLMN_SCREENSHOTS') else None

# the state of the open notebook: its code cells run so far, and the errors among their outputs
NOTEBOOK_STATE = """() => {
    const nb = window.jupyterapp.shell.currentWidget, cells = nb.content.model.cells;
    const state = {code: 0, run: 0, errors: [], kernel: nb.sessionContext?.session?.kernel?.status,
                   path: nb.context?.path};
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        state.code += 1;
        if (cell.executionCount !== null) state.run += 1;
        for (let j = 0; j < cell.outputs.length; j++) {
            const out = cell.outputs.get(j).toJSON();
            if (out.output_type === 'error') state.errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
        }
    }
    return state;
}"""


def save_screenshot(locator, path:Path, width:int=1100):
    "A PNG of one element, scaled down to at most `width` pixels and palette-quantized (small enough to commit)."
    from PIL import Image
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    im = Image.open(path).convert('RGB')
    if im.width > width: im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.quantize(colors=128).save(path, optimize=True)


def run_all(browser, url:str, name:str, timeout_s:float=900) -> dict:
    "Run-All of notebook `name` in JupyterLab, as a user would; its state once every cell ran or one failed."
    page = browser.new_page(viewport=dict(width=1400, height=1800))
    run_notebook(page, url, name)
    deadline, state = time.time() + timeout_s, {}
    while time.time() < deadline:
        state = page.evaluate(NOTEBOOK_STATE)
        if state['kernel'] == 'idle' and (state['errors'] or state['run'] == state['code']): break
        time.sleep(1)
    return dict(state, page=page)


def test_run_all_notebooks_in_jupyterlab(tmp_path):
    """Every notebook runs top to bottom in JupyterLab (every cell, `#|` flags ignored) on this machine without a
    network, a GPU or the benchmark data; the widgets of 05 and 07 render (pictures in `tmp_path`, or in
    $NLMN_SCREENSHOTS)."""
    skip_without_browser()
    import shutil
    project, home, pictures = tmp_path/'project', tmp_path/'home', PICTURES or tmp_path
    root = project/'nbs'  # a copy (JupyterLab may autosave what it ran) inside a project (the notebooks nbdev_export)
    shutil.copytree(NBS, root, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_*'))
    shutil.copy(NBS.parent/'settings.ini', project)
    home.mkdir()
    failed, times = {}, {}
    with jupyter_lab(root, home) as url, chromium() as browser:
        for nb in sorted(p.name for p in root.glob('*.ipynb')):
            t0 = time.perf_counter()
            state = run_all(browser, url, nb)
            times[nb] = time.perf_counter() - t0
            if state['path'] != nb:  # the state read was another notebook's: nothing was checked
                failed[nb] = [f"JupyterLab showed {state['path']!r}, not {nb!r}"]
            elif state['errors'] or state['run'] != state['code']:
                failed[nb] = state['errors'] or [f"{state['run']} of {state['code']} code cells ran"]
            elif nb in WIDGETS:
                widget, picture = WIDGETS[nb]
                shown = state['page'].locator(f'.jp-OutputArea-output {widget}').first
                shown.wait_for(timeout=60_000)
                if picture: save_screenshot(shown, pictures/picture)
            state['page'].evaluate('window.jupyterapp.shell.currentWidget.sessionContext.shutdown()')  # free its memory
            state['page'].close()
    print('Run-All in JupyterLab: ' + ', '.join(f'{nb} {t:.0f} s' for nb, t in times.items()))
    assert not failed, failed
