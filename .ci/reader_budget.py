"""The words a reader meets: README.md and the lesson notebooks (nbs/00 to nbs/07e), against the reader's-path budgets.

    python .ci/reader_budget.py            # a table
    python .ci/reader_budget.py --check    # and exit 1 naming every budget exceeded (CI runs this)

Budgets: the README at most 1,500 words (code blocks and tables included); 06_generalisation at most 3,000 words of
markdown prose (the prose that hidden cells, `#| echo: false`, generate from results included), every other lesson at most 2,500; no markdown paragraph over 150 words (tables and code blocks are not
paragraphs); no phrases of the research log in the README or a lesson (that history belongs in experiments/README.md);
every lesson ends with a "Questions" or "Exercises" section.
"""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
LAB_LOG = re.compile(r"not kept|names that moved|before the (pale|sharper|fix)|after the first cycle|tried and not", re.I)
QUESTIONS = re.compile(r"^#+\s*(Questions|Exercises)\b", re.M)

def paragraphs(markdown: str) -> list[str]:
    "Paragraphs between blank lines, code blocks and tables left out."
    markdown = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return [part for part in re.split(r"\n\s*\n", markdown) if part.strip() and not part.lstrip().startswith("|")]

def words(text: str) -> int: return len(re.findall(r"\S+", text))

def documents() -> list[tuple[str, str, int, bool]]:
    "(name, text, word budget, is a lesson) for the README and every lesson notebook."
    found = [("README.md", (root/"README.md").read_text(encoding="utf-8"), 1500, False)]
    for notebook in sorted((root/"nbs").glob("0[0-7]*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        markdown = "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
        generated = ["".join(output.get("data", {}).get("text/markdown", "")) for cell in cells if cell["cell_type"] == "code"
                     and "".join(cell["source"]).startswith("#| echo: false") for output in cell.get("outputs", [])]
        markdown = "\n\n".join([markdown, *filter(None, generated)])  # prose a hidden cell writes is prose the reader reads
        found.append((notebook.name, markdown, 3000 if notebook.name.startswith("06") else 2500, True))
    return found

def main() -> int:
    over = []
    for name, text, budget, lesson in documents():
        count, longest, log = words(text), max((words(part) for part in paragraphs(text)), default=0), len(LAB_LOG.findall(text))
        asks = bool(QUESTIONS.search(text)) if lesson else None
        print(f"{name:30s} {count:5d} words (budget {budget}), longest paragraph {longest:4d}, lab-log phrases {log}" + ("" if asks is None else f", questions {'yes' if asks else 'NO'}"))
        if count > budget: over.append(f"{name}: {count} words > {budget}")
        if longest > 150: over.append(f"{name}: a paragraph of {longest} words > 150")
        if log: over.append(f"{name}: {log} research-log phrases ({', '.join(sorted(set(m.group(0).lower() for m in LAB_LOG.finditer(text))))})")
        if asks is False: over.append(f"{name}: no Questions or Exercises section")
    if over and "--check" in sys.argv:
        print("over the reader's budget:\n  " + "\n  ".join(over))
        return 1
    return 0

if __name__ == "__main__": sys.exit(main())
