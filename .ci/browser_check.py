"""Open the notebooks as a reader does, in headless Chromium: in JupyterLab, and as the web pages of .ci/html_pages.py.

    python .ci/browser_check.py lab [--screenshots DIR]      # jupyter lab on 127.0.0.1 with a token, each notebook opened
    python .ci/browser_check.py pages DIR                    # the HTML folder, served on 127.0.0.1, each page loaded

`lab` fails when a notebook does not render all its cells, when a stored figure output or a markdown image is not
shown (or shows a broken image), or on an uncaught page error; it saves screenshots of 00_data and 05_evaluation
(at the top and at their first figure). `pages` fails on a broken link between pages, a missing or broken image, or a
page error. Needs Debian's `chromium` (`/usr/bin/chromium`, or $CHROMIUM) and the `playwright` package (dev extra);
Playwright's own browser download is not used.
"""
import argparse, functools, http.server, json, os, re, secrets, shutil, socket, subprocess, sys, tempfile, threading, time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

root = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
SCREENSHOT_NOTEBOOKS = ('00_data.ipynb', '05_evaluation.ipynb')

def chromium() -> str:
    path = os.environ.get('CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(path).is_file(): sys.exit("no Chromium found: install Debian's chromium package (apt-get install chromium) or set CHROMIUM")
    return path

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0)); return probe.getsockname()[1]

def expected_images(notebook: Path) -> tuple[int, int]:
    "Figures stored in the notebook's outputs, and images in its markdown."
    document = json.loads(notebook.read_text())
    outputs = sum(1 for cell in document['cells'] if cell['cell_type'] == 'code' for output in cell.get('outputs', [])
                  if any(kind.startswith('image/') for kind in output.get('data', {})))
    markdown = sum(len(re.findall(r'!\[[^\]]*\]\([^)]+\)|<img\s', ''.join(cell['source']))) for cell in document['cells'] if cell['cell_type'] == 'markdown')
    return outputs, markdown

BROKEN_IMAGES = "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.getAttribute('src').slice(0, 80))"

def check_lab(screenshots: Path | None, timeout: float = 120) -> list[str]:
    "Open every notebook in JupyterLab; return the problems found."
    from playwright.sync_api import sync_playwright
    workspace = Path(tempfile.mkdtemp(prefix='fcn-nuclei-lab-'))
    settings = workspace/'settings'
    # render every cell (JupyterLab 4 otherwise renders only what is in view), and no calls to the closed network
    for plugin, values in {'@jupyterlab/notebook-extension/tracker': {'windowingMode': 'none'},
                           '@jupyterlab/apputils-extension/notification': {'fetchNews': 'false', 'checkForUpdates': False},
                           '@jupyterlab/extensionmanager-extension/plugin': {'enabled': False}}.items():
        target = settings/(plugin + '.jupyterlab-settings'); target.parent.mkdir(parents=True, exist_ok=True); target.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    environment = {**os.environ, 'JUPYTERLAB_SETTINGS_DIR': str(settings), 'JUPYTERLAB_WORKSPACES_DIR': str(workspace/'workspaces')}
    server = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
                               f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root/"nbs"}', '--ServerApp.open_browser=False', '--ServerApp.allow_root=True'],
                              env=environment, stdout=subprocess.DEVNULL, stderr=open(workspace/'server.log', 'w'))
    problems = []
    try:
        base = f'http://127.0.0.1:{port}'
        for _ in range(120):
            try: urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=2); break
            except OSError: time.sleep(0.5)
        else: return [f"jupyter lab did not start: {(workspace/'server.log').read_text()[-2000:]}"]
        notebooks = sorted((root/'nbs').glob('*.ipynb'), key=lambda path: (path.name != 'index.ipynb', path.name))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            for notebook in notebooks:
                page = browser.new_page(viewport={'width': 1400, 'height': 1000})
                errors = []
                page.on('pageerror', lambda error: errors.append(str(error)))
                page.goto(f'{base}/lab/tree/{notebook.name}?token={token}&reset', wait_until='domcontentloaded')  # reset: only this notebook open, not the ones the workspace restores
                cells = len(json.loads(notebook.read_text())['cells'])
                try: page.wait_for_function(f"document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').length >= {cells}", timeout=timeout * 1000)
                except Exception: problems.append(f"{notebook.name}: JupyterLab did not render its {cells} cells"); page.close(); continue
                figures, markdown = expected_images(notebook)
                panel = '.jp-NotebookPanel:not(.lm-mod-hidden)'
                try: page.wait_for_function(f"document.querySelectorAll('{panel} .jp-OutputArea-output img').length >= {figures}"
                                            f" && document.querySelectorAll('{panel} .jp-MarkdownOutput img').length >= {markdown}", timeout=30000)
                except Exception: pass
                page.wait_for_timeout(1000)
                shown_figures = page.locator(f'{panel} .jp-OutputArea-output img').count()
                shown_markdown = page.locator(f'{panel} .jp-MarkdownOutput img').count()
                broken = page.eval_on_selector_all(f'{panel} img', BROKEN_IMAGES)
                if shown_figures < figures: problems.append(f"{notebook.name}: {figures} stored figure outputs, {shown_figures} shown")
                if shown_markdown < markdown: problems.append(f"{notebook.name}: {markdown} markdown images, {shown_markdown} shown")
                if broken: problems.append(f"{notebook.name}: broken images {broken}")
                if errors: problems.append(f"{notebook.name}: page errors {errors[:3]}")
                print(f"lab {notebook.name}: {cells} cells, {shown_figures}/{figures} figures, {shown_markdown}/{markdown} markdown images, "
                      f"{len(broken)} broken, {len(errors)} page errors", flush=True)
                if screenshots and notebook.name in SCREENSHOT_NOTEBOOKS:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshots/f'lab_{notebook.stem}_top.png'))
                    first = page.locator(f'{panel} .jp-OutputArea-output img').first
                    if first.count():
                        first.scroll_into_view_if_needed(); page.wait_for_timeout(500)
                        page.screenshot(path=str(screenshots/f'lab_{notebook.stem}_figure.png'))
                page.close()
            browser.close()
    finally:
        server.terminate()
        try: server.wait(20)
        except subprocess.TimeoutExpired: server.kill()
        shutil.rmtree(workspace, ignore_errors=True)
    return problems

def check_pages(folder: Path) -> list[str]:
    "Serve `folder` on 127.0.0.1 and load every page; return the problems found."
    from playwright.sync_api import sync_playwright
    listed = json.loads((folder/'pages.json').read_text())
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *arguments): pass
    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f'http://127.0.0.1:{server.server_address[1]}/'
    problems, notebooks = [], {path.stem: path for path in (root/'nbs').glob('*.ipynb')}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            for entry in listed:
                page = browser.new_page()
                errors, failed = [], []
                page.on('pageerror', lambda error: errors.append(str(error)))
                page.on('response', lambda response: failed.append(f'{response.status} {response.url}') if response.status >= 400 and response.url.startswith(base) else None)
                page.goto(base + entry['page'], wait_until='load')
                broken = page.eval_on_selector_all('img', BROKEN_IMAGES)
                images = page.locator('img').count()
                links = page.eval_on_selector_all('a[href]', "els => els.map(e => e.getAttribute('href'))")
                local = [link for link in links if not urlparse(link).scheme and not link.startswith('#')]
                dead = []
                for link in local:
                    target = urlparse(urljoin(base + entry['page'], link))
                    path = folder/target.path.lstrip('/')
                    if not path.is_file(): dead.append(link); continue
                    if target.fragment and path.suffix == '.html' and f'id="{target.fragment}"' not in path.read_text(encoding='utf-8'): dead.append(link)
                stem = Path(entry['page']).stem
                figures, markdown = expected_images(notebooks[stem]) if stem in notebooks else (0, 0)
                if images < figures + markdown: problems.append(f"{entry['page']}: {figures + markdown} images in the notebook, {images} on the page")
                if broken: problems.append(f"{entry['page']}: broken images {broken}")
                if dead: problems.append(f"{entry['page']}: broken links {dead}")
                if failed: problems.append(f"{entry['page']}: failed requests {failed[:5]}")
                if errors: problems.append(f"{entry['page']}: page errors {errors[:3]}")
                print(f"page {entry['page']}: {images} images ({figures} figures + {markdown} markdown expected), {len(broken)} broken, "
                      f"{len(local)} local links, {len(dead)} dead, {len(errors)} page errors", flush=True)
                page.close()
            browser.close()
    finally: server.shutdown()
    return problems

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mode', choices=['lab', 'pages'])
    parser.add_argument('folder', nargs='?', type=Path, default=root/'_pages', help='pages: the folder written by .ci/html_pages.py')
    parser.add_argument('--screenshots', type=Path, default=None, help='lab: save screenshots of 00_data and 05_evaluation here')
    arguments = parser.parse_args()
    problems = check_lab(arguments.screenshots) if arguments.mode == 'lab' else check_pages(arguments.folder)
    for problem in problems: print('PROBLEM', problem, file=sys.stderr)
    print(f"{arguments.mode}: {'FAILED, ' + str(len(problems)) + ' problems' if problems else 'all checks passed'}")
    sys.exit(1 if problems else 0)
