"""Render every notebook, with its stored outputs, to a web page for readers without Jupyter.

    python .ci/html_pages.py [--out _pages]

One folder: `index.html` (from nbs/index.ipynb) and one page per notebook in the tutorial's order, each with a
contents bar listing every page and links to its neighbours; links between notebooks point at their pages, and the
images the prose shows (nbs/images) are copied beside them. Outputs are the ones stored in the notebooks (figures are
embedded); nothing is executed. Check the result with `python .ci/browser_check.py pages _pages`.
"""
import argparse, html, json, os, re, shutil, tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

root = Path(__file__).resolve().parent.parent

def tutorial_order() -> list[Path]:
    "index first, then the numbered notebooks."
    return sorted((root/'nbs').glob('*.ipynb'), key=lambda path: (path.name != 'index.ipynb', path.name))

def page_name(notebook: Path) -> str:
    return notebook.stem + '.html'

def title(document) -> str:
    "The notebook's first markdown heading."
    for cell in document.cells:
        if cell.cell_type == 'markdown':
            match = re.search(r'^#\s+(.+)$', cell.source, re.M)
            if match: return match.group(1).strip()
    return ''

def navigation(pages: list[tuple[str, str]], current: int) -> tuple[str, str]:
    "A contents bar for the top of page `current`, and previous/next links for its bottom."
    items = ' · '.join(f'<b>{html.escape(label)}</b>' if index == current else f'<a href="{name}">{html.escape(label)}</a>'
                       for index, (name, label) in enumerate(pages))
    top = f'<nav class="tutorial-nav" style="padding:8px 16px;border-bottom:1px solid #ccc;font-family:sans-serif;font-size:14px">{items}</nav>'
    links = []
    if current > 0: links.append(f'<a rel="prev" href="{pages[current - 1][0]}">&larr; {html.escape(pages[current - 1][1])}</a>')
    if current < len(pages) - 1: links.append(f'<a rel="next" href="{pages[current + 1][0]}">{html.escape(pages[current + 1][1])} &rarr;</a>')
    bottom = f'<nav class="tutorial-pager" style="padding:16px;border-top:1px solid #ccc;font-family:sans-serif;display:flex;justify-content:space-between">{"".join(links)}</nav>'
    return top, bottom

def build(out: Path) -> list[Path]:
    "Write every page into `out` (replaced as a whole, through a temporary folder); return the pages."
    notebooks = tutorial_order()
    documents = [nbformat.read(path, as_version=4) for path in notebooks]
    labels = ['Home' if path.name == 'index.ipynb' else f"{path.stem.split('_')[0]} {title(document) or path.stem}" for path, document in zip(notebooks, documents)]
    pages = [('index.html' if path.name == 'index.ipynb' else page_name(path), label) for path, label in zip(notebooks, labels)]
    exporter = HTMLExporter(template_name='lab')
    staging = Path(tempfile.mkdtemp(prefix='.pages-', dir=out.parent if out.parent.exists() else None))
    for index, (path, document) in enumerate(zip(notebooks, documents)):
        body, _ = exporter.from_notebook_node(document, resources={'metadata': {'name': labels[index]}})
        body = re.sub(r'href="([^":#]+)\.ipynb(#[^"]*)?"', lambda m: f'href="{"index" if m.group(1) == "index" else m.group(1)}.html{m.group(2) or ""}"', body)
        top, bottom = navigation(pages, index)
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + top, body, count=1)
        body = body.replace('</body>', bottom + '</body>', 1)
        (staging/pages[index][0]).write_text(body, encoding='utf-8')
    if (root/'nbs'/'images').is_dir(): shutil.copytree(root/'nbs'/'images', staging/'images')
    (staging/'pages.json').write_text(json.dumps([dict(page=name, title=label) for name, label in pages], indent=2) + '\n')
    if out.exists(): shutil.rmtree(out)
    os.replace(staging, out)
    return [out/name for name, _ in pages]

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=root/'_pages')
    arguments = parser.parse_args()
    written = build(arguments.out.resolve())
    print(f"{len(written)} pages written to {arguments.out}: " + ', '.join(path.name for path in written))
