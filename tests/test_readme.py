"""README.md is generated from nbs/index.ipynb (`settings.ini`: readme_nb). nbdev_readme needs Quarto, which this
project's machines lack, so this small renderer stands in for it: `python tests/test_readme.py` writes README.md, and
the test below fails when the two have drifted apart."""
from __future__ import annotations
import json
from pathlib import Path

ROOT = Path(__file__).parent.parent
INDEX, README = ROOT/'nbs'/'index.ipynb', ROOT/'README.md'


def _text(source) -> str:
    return ''.join(source) if isinstance(source, list) else source


def _outputs(cell:dict) -> list[str]:
    "The text a code cell printed or returned (streams, then plain-text results), each as one string."
    out = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': out.append(_text(o.get('text', '')))
        elif 'text/plain' in o.get('data', {}): out.append(_text(o['data']['text/plain']))
    return [t.rstrip('\n') for t in out if t.strip()]


def render_readme(nb_path:str|Path=INDEX) -> str:
    "Markdown of a notebook: markdown cells verbatim, code cells as ```python blocks, their text outputs as plain ones."
    blocks = []
    for cell in json.loads(Path(nb_path).read_text())['cells']:
        src = _text(cell['source']).strip('\n')
        if cell['cell_type'] == 'markdown': blocks.append(src)
        elif cell['cell_type'] == 'code':
            lines = src.splitlines()
            if lines and lines[0].replace(' ', '') == '#|hide': continue  # hidden cells stay out, as in nbdev's docs
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')  # no cell directives
            if code: blocks.append(f'```python\n{code}\n```')
            blocks += [f'```\n{t}\n```' for t in _outputs(cell)]
    return '\n\n'.join(b for b in blocks if b) + '\n'


def test_readme_is_the_rendering_of_the_index_notebook():
    assert README.read_text() == render_readme(INDEX), \
        "README.md and nbs/index.ipynb differ: edit the notebook, then run `python tests/test_readme.py`"


def test_render_readme_shows_code_and_its_text_output(tmp_path):
    cell = lambda kind, src, **kw: dict(cell_type=kind, metadata={}, source=src, **kw)
    nb = dict(cells=[cell('markdown', ['# title\n', '\n', 'text']),
                     cell('code', '#| hide\nsecret = 1', outputs=[]),
                     cell('code', '#| eval: true\n1 + 1', outputs=[
                         dict(output_type='stream', name='stdout', text=['printed\n']),
                         dict(output_type='execute_result', data={'text/plain': ['2']}, metadata={})]),
                     cell('markdown', 'end')],
              metadata={}, nbformat=4, nbformat_minor=5)
    (tmp_path/'nb.ipynb').write_text(json.dumps(nb))
    want = '# title\n\ntext\n\n```python\n1 + 1\n```\n\n```\nprinted\n```\n\n```\n2\n```\n\nend\n'
    assert render_readme(tmp_path/'nb.ipynb') == want


if __name__ == '__main__':
    README.write_text(render_readme(INDEX))
    print(f'wrote {README.relative_to(ROOT)} from {INDEX.relative_to(ROOT)}')
