"""Run every notebook top to bottom in a real Jupyter kernel, each alone, as a reader on a fresh machine does.

    python .ci/execute_notebooks.py [--times results/notebook_times.json [--update]] [--keep DIR] [NOTEBOOK ...]

The repository's tracked files (and untracked, not ignored ones) are copied into a temporary folder with no
../shared beside it; FCN_NUCLEI_DATA is unset and FCN_NUCLEI_CACHE points at an empty folder, so the notebooks run on
the embedded synthetic data, as on a fresh machine with no download. Each notebook then runs in a new kernel
(nbclient, every cell, nbdev's `notest` and `slow` cells included, as in JupyterLab's "Run All"), and its wall-clock
time is recorded. Exits 1 naming the notebook and the cell that failed; prints a markdown table of times.
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

root = Path(__file__).resolve().parent.parent

def copy_repository(target: Path) -> Path:
    "Copy the files git knows (tracked, or untracked and not ignored) into `target`/fcn_nuclei_checkout."
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'], cwd=root,
                           capture_output=True, check=True).stdout.decode().split('\0')
    checkout = target/'fcn_nuclei_checkout'
    for name in filter(None, files):
        source = root/name
        if not source.is_file(): continue  # deleted but not yet committed
        destination = checkout/name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return checkout

def execute(notebook: Path, timeout: int) -> float:
    "Execute one notebook in a fresh kernel in its own folder; return the seconds it took."
    document = nbformat.read(notebook, as_version=4)
    client = NotebookClient(document, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(notebook.parent)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    nbformat.write(document, notebook)  # the executed copy, outputs included, stays in the temporary checkout
    return seconds

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('notebooks', nargs='*', help='notebook names (default: every nbs/*.ipynb, in order)')
    parser.add_argument('--times', type=Path, default=None, help='write the seconds per notebook to this JSON file')
    parser.add_argument('--keep', type=Path, default=None, help='copy the executed notebooks into this folder')
    parser.add_argument('--update', action='store_true', help='--times: keep the times already in the file for the notebooks not run, each with the date it was measured')
    parser.add_argument('--timeout', type=int, default=1800, help='seconds allowed to one cell')
    arguments = parser.parse_args()
    names = arguments.notebooks or sorted(path.name for path in (root/'nbs').glob('*.ipynb'))
    names = sorted(names, key=lambda name: (name != 'index.ipynb', name))
    workspace = Path(tempfile.mkdtemp(prefix='fcn-nuclei-reader-'))
    checkout = copy_repository(workspace)
    os.environ.pop('FCN_NUCLEI_DATA', None)
    os.environ['FCN_NUCLEI_CACHE'] = str(workspace/'cache')
    os.environ['MPLBACKEND'] = 'Agg'
    times, failed = {}, None
    for name in names:
        notebook = checkout/'nbs'/name
        if not notebook.is_file(): sys.exit(f"{name}: no such notebook in nbs/")
        print(f"{name} ...", end=' ', flush=True)
        try: times[name] = round(execute(notebook, arguments.timeout), 1)
        except CellExecutionError as error:
            print('FAILED'); failed = name
            print(f"{name}: a cell raised an error:\n{str(error)[-3000:]}", file=sys.stderr); break
        print(f"{times[name]} s", flush=True)
    if arguments.keep:
        arguments.keep.mkdir(parents=True, exist_ok=True)
        for name in times: shutil.copy2(checkout/'nbs'/name, arguments.keep/name)
    shutil.rmtree(workspace, ignore_errors=True)
    if failed: sys.exit(1)
    today, machine = time.strftime('%Y-%m-%d'), f"{os.cpu_count()} CPU cores, {platform.machine()}"
    dates, executed = {name: today for name in times}, dict(times)
    if arguments.update and arguments.times and arguments.times.is_file():
        stored = json.loads(arguments.times.read_text())
        if stored.get('machine') != machine: sys.exit(f"{arguments.times}: measured on {stored.get('machine')}, not on {machine}: time every notebook again")
        kept = {name: seconds for name, seconds in stored['seconds'].items() if name not in times and (root/'nbs'/name).is_file()}
        dates = {**{name: stored.get('dates', {}).get(name, stored['date']) for name in kept}, **dates}
        both = {**kept, **times}
        times = {name: both[name] for name in sorted(both, key=lambda name: (name != 'index.ipynb', name))}
    result = dict(date=max(dates.values()) if dates else today, machine=machine, data='embedded synthetic (no ../shared, empty cache)',
                  command='python .ci/execute_notebooks.py', seconds=times, dates=dates, total_seconds=round(sum(times.values()), 1))
    if arguments.times:
        temporary = arguments.times.with_name(f'.{arguments.times.name}.partial')
        temporary.write_text(json.dumps(result, indent=2) + '\n'); os.replace(temporary, arguments.times)
    print('\n| notebook | seconds |\n|---|---|\n' + '\n'.join(f'| {name} | {seconds} |' for name, seconds in executed.items()))
    print(f"{len(executed)} notebooks executed in {round(sum(executed.values()), 1)} s, 0 failed" + (f"; {len(times) - len(executed)} times kept from {arguments.times}" if len(times) > len(executed) else ''))

if __name__ == '__main__':
    main()
