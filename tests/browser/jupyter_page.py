"""A notebook open in JupyterLab 4 or Notebook 7, driven as a person would: menus, clicks, keys.

Both front-ends share JupyterLab's notebook widgets, so one set of selectors serves both; only
the URL differs. `run_cell`/`run_new_cell` run one cell and wait for its output: the hook for
tests of new notebook features (buttons in outputs, `%claude fix`, DataFrame views).
"""
from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# JupyterLab: `?reset` starts from an empty workspace, not the tabs an earlier test left open.
URL_PREFIX = {"lab": "lab/tree/", "notebook": "notebooks/"}
URL_QUERY = {"lab": "reset&", "notebook": ""}
# The notebook on screen (JupyterLab keeps other tabs' panels in the page, hidden).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
NOTEBOOK = PANEL + " .jp-Notebook"

# Every code cell has a number in its prompt ([3]: ...), none is queued or running ([*]:).
_ALL_RAN = """(notebook) => {
  const prompts = [...document.querySelectorAll(notebook + ' .jp-CodeCell .jp-InputPrompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""

# Indexes of the code cells whose source (CodeMirror's lines) contains / is the text.
_FIND_CELLS = """([notebook, text, exact]) => {
  const hits = [];
  document.querySelectorAll(notebook + ' .jp-Cell').forEach((cell, index) => {
    if (!cell.classList.contains('jp-CodeCell')) return;
    const source = [...cell.querySelectorAll('.cm-content .cm-line')]
      .map(line => line.textContent).join('\\n');
    if (exact ? source === text : source.includes(text)) hits.push(index);
  });
  return hits;
}"""

_KERNEL_IDLE = """(panel) => {
  const name = document.querySelector(panel + ' .jp-Toolbar-kernelName');
  const status = document.querySelector(panel + ' .jp-Notebook-ExecutionIndicator');
  return !!name && !!status && name.textContent.trim() !== 'No Kernel'
    && status.dataset.status === 'idle';
}"""


class NotebookPage:
    def __init__(self, page: Page, base_url: str, token: str, ui: str = "lab"):
        if ui not in URL_PREFIX:
            raise ValueError(f"ui is 'lab' or 'notebook', not {ui!r}")
        self.page, self.base_url, self.token, self.ui = page, base_url, token, ui
        self.path: str | None = None

    # -- opening -----------------------------------------------------------------------------
    def open(self, path: str, timeout: float = 60_000) -> "NotebookPage":
        self.path = path
        self.page.goto(f"{self.base_url}{URL_PREFIX[self.ui]}{path}"
                       f"?{URL_QUERY[self.ui]}token={self.token}")
        self.cells.first.wait_for(timeout=timeout)
        self.wait_kernel_idle(timeout)
        return self

    def wait_kernel_idle(self, timeout: float = 60_000) -> None:
        """Until a kernel is attached (its name in the toolbar) and idle. Before a kernel
        exists the indicator says idle too, hence the name."""
        self.page.wait_for_function(_KERNEL_IDLE, arg=PANEL, timeout=timeout, polling=200)

    # -- cells -------------------------------------------------------------------------------
    @property
    def cells(self) -> Locator:
        return self.page.locator(f"{NOTEBOOK} .jp-Cell")

    def code_cell(self, source: str, exact: bool = False, timeout: float = 15_000) -> Locator:
        """The one code cell whose source contains `source` (is `source`, with exact=True).
        Waits for it: a long notebook's cells are rendered a few at a time."""
        try:
            hits = self.page.wait_for_function(
                f"(args) => {{ const hits = ({_FIND_CELLS})(args); "
                "return hits.length === 1 ? hits : null; }",
                arg=[NOTEBOOK, source, exact], timeout=timeout, polling=200).json_value()
        except Exception:
            hits = self.page.evaluate(_FIND_CELLS, [NOTEBOOK, source, exact])
            raise AssertionError(f"{len(hits)} code cells match {source!r}") from None
        return self.cells.nth(hits[0])

    @property
    def error_outputs(self) -> Locator:
        """Tracebacks and stderr text in the notebook."""
        return self.page.locator(f"{NOTEBOOK} .jp-OutputArea-output"
                                 "[data-mime-type='application/vnd.jupyter.stderr']")

    @staticmethod
    def outputs(cell: Locator) -> Locator:
        return cell.locator(".jp-OutputArea-output")

    @staticmethod
    def output_text(cell: Locator) -> str:
        """All that the cell's outputs show, as text."""
        return cell.locator(".jp-Cell-outputArea").inner_text()

    @staticmethod
    def prompt(cell: Locator) -> str:
        return cell.locator(".jp-InputPrompt").inner_text().strip()

    # -- running -----------------------------------------------------------------------------
    def menu(self, *labels: str) -> None:
        """Click through the menu bar: menu("Run", "Run All Cells")."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=labels[0]).first.click()
        for label in labels[1:]:
            self.page.locator(".lm-Menu-itemLabel").get_by_text(label, exact=True).first.click()

    def run_all(self, timeout: float = 240_000) -> None:
        """Run > Run All Cells, then wait until every code cell has run."""
        self.menu("Run", "Run All Cells")
        self.wait_all_ran(timeout)
        self.wait_kernel_idle(timeout)

    def wait_all_ran(self, timeout: float = 240_000) -> None:
        """Until every code cell shows an execution count (none queued or running)."""
        self.page.wait_for_function(_ALL_RAN, arg=NOTEBOOK, timeout=timeout, polling=250)

    def run_cell(self, cell: Locator, timeout: float = 120_000) -> Locator:
        """Select `cell`, Ctrl+Enter (run in place), wait until it has run; returns its outputs."""
        before = self.prompt(cell)
        cell.locator(".jp-InputPrompt").click()          # selects the cell, command mode
        self.page.keyboard.press("Control+Enter")
        self.page.wait_for_function(
            """([cell, before]) => {
                 const p = cell.querySelector('.jp-InputPrompt').textContent.trim();
                 return /\\[\\d+\\]/.test(p) && p !== before;
               }""", arg=[cell.element_handle(), before], timeout=timeout, polling=100)
        return self.outputs(cell)

    def run_new_cell(self, source: str, timeout: float = 120_000) -> Locator:
        """Add a code cell at the end with `source`, run it, wait; returns the new cell."""
        last = self.cells.last
        last.locator(".jp-InputPrompt, .jp-Cell-inputCollapser").first.click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")                    # insert below, the new cell selected
        new_cell = self.cells.last
        new_cell.locator(".cm-content").click()
        self.page.keyboard.insert_text(source)           # verbatim: no auto-indent, no brackets
        self.run_cell(new_cell, timeout)
        return new_cell

    # -- looking -----------------------------------------------------------------------------
    def screenshot(self, name: str) -> Path:
        """Save what the page shows now under tests/browser/artifacts/ (for people to look at)."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
