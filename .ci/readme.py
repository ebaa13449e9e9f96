"""Generate README.md from nbs/index.ipynb (nbdev's `nbdev-readme` needs Quarto, which these machines cannot install).

Markdown cells are copied with relative links rewritten from nbs/ to the repository root; code cells without a
`#| hide` directive are shown as Python blocks with their text output. `--check` exits 1 if README.md is stale.
"""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
notebook = json.loads((root/'nbs'/'index.ipynb').read_text())

def _rewrite_links(text):
    "Point relative links and images at nbs/, where the notebook's own links resolve."
    return re.sub(r'(\]\()(?!https?:|#|/|mailto:)([^)]+\))', r'\1nbs/\2', text)

parts = ['<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->']
for cell in notebook['cells']:
    source = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': parts.append(_rewrite_links(source))
    elif cell['cell_type'] == 'code' and source.strip() and not re.search(r'^#\|\s*hide', source, re.M):
        code = '\n'.join(line for line in source.splitlines() if not line.startswith('#|'))
        parts.append(f'```python\n{code}\n```')
        texts = [''.join(o.get('text', '')) or ''.join(o.get('data', {}).get('text/plain', '')) for o in cell.get('outputs', [])]
        if any(texts): parts.append('```\n' + ''.join(texts).rstrip() + '\n```')
readme = '\n\n'.join(parts) + '\n'
target = root/'README.md'
if '--check' in sys.argv:
    if not target.exists() or target.read_text() != readme: sys.exit('README.md is out of date: run python .ci/readme.py')
else: target.write_text(readme)
