"""Stored notebook outputs are what a reader should see: no TensorFlow start-up lines, no Python warnings, no log noise.

    python .ci/clean_outputs.py [NOTEBOOK ...]          # remove such lines from the stored outputs, in place
    python .ci/clean_outputs.py --check [NOTEBOOK ...]  # exit 1 naming every notebook and cell that still has one

Default: every notebook in nbs/. Only stream outputs (stdout/stderr) are touched; a stream left empty is dropped.
"""
import argparse, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

NOISE = re.compile('|'.join([
    r'^WARNING: All log messages before absl::InitializeLog\(\)',
    r'^[IWE]\d{4} [\d:]+\.\d+\s+\d+ \S+\.(cc|h):\d+\]',  # absl/TensorFlow C++ log lines (clock time, or seconds since the epoch)
    r'oneDNN custom operations are on', r'TF_ENABLE_ONEDNN_OPTS', r'cudart_stub', r'failed call to cuInit',
    r'Could not find cuda drivers', r'Unable to register cu(DNN|FFT|BLAS) factory', r'computation_placer',
    r'This TensorFlow binary is optimized', r'rebuild TensorFlow with the appropriate compiler flags',
    r'IProgress not found', r'TqdmWarning', r'^\s*from \.autonotebook import tqdm as notebook_tqdm',
    r'^\S.*: +\d+%\|.*\| *\d+/\d+ \[',  # a tqdm progress bar drawn as text
    r'\w+Warning: ', r'^\s*warnings\.warn\(', r"known_hash' argument of 'pooch", r'^SHA256 hash of downloaded file',  # Python warnings, pooch's hints
]))

# a Python warning as printed: "file.py:12: SomeWarning: message", continuation lines, then the source line that warned
WARNING_BLOCK = re.compile(r'^[^\n]*:\d+: \w+Warning: .*?\n\s*warnings\.warn\([^\n]*\n', re.M | re.S)

def noisy_lines(text: str) -> list[str]:
    "The lines of `text` that are log noise."
    return [line for line in text.splitlines() if NOISE.search(line)]

def clean(notebook: Path, check: bool) -> list[str]:
    "Remove (or, with `check`, report) noise lines in the stored stream outputs of one notebook."
    document = json.loads(notebook.read_text())
    problems, changed = [], False
    for index, cell in enumerate(document['cells']):
        kept = []
        for output in cell.get('outputs', []):
            if output.get('output_type') == 'stream':
                text = ''.join(output['text'])
                if not text.strip():  # what an erased progress bar leaves behind
                    problems.append(f"{notebook.name} cell {index}: an output of blank space"); changed = True
                    continue
                noise = noisy_lines(text)
                if noise:
                    problems.append(f"{notebook.name} cell {index}: {noise[0][:100]}")
                    text = ''.join(line for line in WARNING_BLOCK.sub('', text).splitlines(keepends=True) if not NOISE.search(line))
                    output['text'] = text.splitlines(keepends=True); changed = True
                    if not text.strip(): continue
            kept.append(output)
        if 'outputs' in cell: cell['outputs'] = kept
    if changed and not check: notebook.write_text(json.dumps(document, indent=1, ensure_ascii=False) + '\n')
    return problems

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('notebooks', nargs='*', type=Path)
    parser.add_argument('--check', action='store_true', help='report, change nothing; exit 1 if any notebook has noise')
    arguments = parser.parse_args()
    problems = [problem for notebook in arguments.notebooks or sorted((root/'nbs').glob('*.ipynb')) for problem in clean(notebook, arguments.check)]
    for problem in problems: print(('log noise in ' if arguments.check else 'removed from ') + problem)
    return 1 if arguments.check and problems else 0

if __name__ == '__main__': sys.exit(main())
