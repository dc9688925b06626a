"""`%%claude` and `%claude`: Claude in notebook cells, streamed, with chat memory.

    %load_ext claude_nb
    %%claude --model haiku -o answer
    Explain what {df.shape} means for this DataFrame.

Defaults are traitlets on `ClaudeMagics`: `%config ClaudeMagics.model = "opus"`, or
`c.ClaudeMagics.model = "opus"` in an IPython profile's config file.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Enum, Float, Int, Unicode

from ..protocol.models import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from .client import Claude, new_session_key
from .errors import ClaudeError
from ..protocol.errors import AnthropicError
from .display import LiveView, Rendered, in_kernel
from .templating import expand_variables
from .references import ReferenceNamespace, error_log, unhook

FORMATS = ("markdown", "text", "code", "json")
SUBCOMMANDS = ("help", "fix", "models", "reset", "status", "history")

# Added to the system prompt for one cell, never stored in the conversation.
FORMAT_INSTRUCTIONS = {
    "code": "Answer with code only: a single fenced code block, no explanation around it.",
}
# --format json asks for structured output (output_config.format): the answer is a JSON object
# by construction, checked by the CLI, rather than free text parsed afterwards.
JSON_OUTPUT_FORMAT = {"type": "json_schema",
                      "schema": {"type": "object", "additionalProperties": True}}

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The code of an answer: its fenced blocks joined, else the whole text."""
    blocks = _FENCE.findall(text)
    if blocks:
        return "\n\n".join(b.rstrip("\n") for b in blocks)
    return text.strip()


def parse_json_answer(text: str):
    """The JSON value of an answer (fences tolerated); ValueError if there is none."""
    stripped = text.strip()
    fenced = _FENCE.findall(stripped)
    if fenced:
        stripped = fenced[0].strip()
    return json.loads(stripped)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports through IPython's UsageError instead of exiting."""

    def error(self, message):
        raise UsageError(f"%%claude: {message}\n{self.format_usage()}")

    def exit(self, status=0, message=None):
        if message:
            raise UsageError(message)
        raise UsageError(self.format_help())


def cell_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="%%claude", add_help=True,
                        description="Send the cell to Claude and show the answer as it arrives.")
    p.add_argument("-m", "--model", help="model id or alias (opus, sonnet, haiku, ...)")
    p.add_argument("-s", "--system", help="system prompt for this cell")
    p.add_argument("--max-tokens", type=int, help="largest answer, in tokens")
    p.add_argument("-o", "--output", metavar="VAR",
                   help="store the answer in this variable (the text; for --format json, the value)")
    p.add_argument("-f", "--format", choices=FORMATS,
                   help="markdown (default), text, code (shown with a Copy button, and offered as "
                        "the next cell where the front-end allows), json")
    p.add_argument("--no-stream", action="store_true", help="show the answer only when complete")
    p.add_argument("--new", action="store_true", help="start a new conversation with this cell")
    p.add_argument("--no-interpolate", action="store_true",
                   help="send {name} references as written (no variable expansion)")
    p.add_argument("--agent", action="store_true",
                   help="let Claude work on the kernel through tools (it asks before running code)")
    p.add_argument("--cache", action="store_true", default=None,
                   help="answer from the result cache when this exact request was answered "
                        "before (no CLI run, nothing billed); else store the answer")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="never answer from the result cache (overrides ClaudeMagics.cache)")
    return p


def fix_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="%claude fix", add_help=True,
                        description="Send the last failing cell and its traceback to Claude for "
                                    "an explanation and a corrected cell.")
    p.add_argument("-m", "--model", help="model id or alias")
    p.add_argument("--max-tokens", type=int, help="largest answer, in tokens")
    p.add_argument("-f", "--format", choices=("markdown", "code"),
                   help="markdown (default: explanation and code) or code (the corrected cell, "
                        "offered as a new cell)")
    p.add_argument("-o", "--output", metavar="VAR", help="store the answer in this variable")
    p.add_argument("--no-stream", action="store_true", help="show the answer only when complete")
    p.add_argument("note", nargs="*", help="what you expected, or a hint")
    return p


HELP = """\
%%claude [options]      send the cell to Claude; the answer streams into the output
  -m/--model M          model id or alias (default: ClaudeMagics.model)
  -s/--system S         system prompt
  --max-tokens N        answer length cap
  -o/--output VAR       store the answer in VAR
  -f/--format F         markdown | text | code (Copy button; next cell where supported) | json
                        (a JSON object through structured output)
  --cache / --no-cache  reuse the stored answer of an identical earlier request (free)
  --no-stream           show the answer once, when complete
  --new                 start a new conversation (otherwise cells continue the chat)
  --no-interpolate      leave {name} references as written
  --agent               Claude works on the kernel through tools: list_variables,
                        inspect_variable, read_cells, run_code (asks you first), insert_cell

In the cell, {name}, {name.attr}, {name[0]} and {name['key']} are replaced by your variables
when they exist, and so are {In[n]} (cell n's code), {Out[n]} (its result), {Err[n]} (its
traceback) and {_}; other braces stay as they are; {{ and }} give literal braces.

%claude fix [--format code] [note]   explain the last error and correct its cell
%claude help | models | reset | status | history
Defaults: %config ClaudeMagics.model = "opus" (also system, max_tokens, format, stream,
interpolate, max_history, display, cache). Agent: ClaudeMagics.agent_run = "ask" | "never" |
"always", agent_approval_timeout, agent_max_rounds, agent_max_result_chars, agent_max_cells.
"""


@magics_class
class ClaudeMagics(Magics):
    model = Unicode(DEFAULT_MODEL, help="Model for %%claude cells (id or alias).").tag(config=True)
    system = Unicode("", help="System prompt for %%claude cells.").tag(config=True)
    max_tokens = Int(DEFAULT_MAX_TOKENS, help="max_tokens for %%claude cells.").tag(config=True)
    format = Enum(FORMATS, default_value="markdown", help="Default answer format.").tag(config=True)
    stream = Bool(True, help="Show answers as they arrive.").tag(config=True)
    interpolate = Bool(True, help="Expand {name} references to notebook variables.").tag(config=True)
    cache = Bool(False, help="Answer a cell from the result cache when the identical request "
                             "(model, system, conversation, parameters) was answered before: no "
                             "CLI run, nothing billed; the output's metadata says cached. "
                             "--cache / --no-cache decide per cell.").tag(config=True)
    max_history = Int(0, help="Earlier exchanges sent with each cell (0: the whole "
                              "conversation).").tag(config=True)
    update_interval = Float(0.1, help="Seconds between display updates while streaming.").tag(config=True)
    display = Enum(("auto", "update", "print"), default_value="auto",
                   help="'update': update the output in place (kernels); 'print': print the text "
                        "as it comes (terminals, frontends that can't update); 'auto': "
                        "update in a kernel, print elsewhere.").tag(config=True)
    agent_run = Enum(("ask", "never", "always"), default_value="ask",
                     help="Agent's run_code: 'ask' the user to approve each exact code, 'never' "
                          "run code, or run it 'always' without asking.").tag(config=True)
    agent_approval_timeout = Float(120.0, help="Seconds to wait for Approve / Deny; no answer "
                                               "counts as Deny.").tag(config=True)
    agent_max_rounds = Int(10, help="Tool rounds (requests answered with tool results) per "
                                    "agent cell.").tag(config=True)
    agent_max_result_chars = Int(4000, help="Largest tool result sent to the model, in "
                                            "characters (more is truncated).").tag(config=True)
    agent_max_cells = Int(20, help="Most cells read_cells returns at once.").tag(config=True)
    fix_max_traceback_chars = Int(6000, help="Longest traceback %claude fix and {Err[n]} send "
                                             "(trimmed in the middle).").tag(config=True)

    def __init__(self, shell=None, client: Claude | None = None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self.client = client or Claude()
        self.conversation: list[dict] = []
        self.session = new_session_key("magic")     # the chat's CLI process is kept between cells
        self.last_answer = None
        self.errors = error_log(self.shell) if self.shell is not None else None
        if self.errors is not None:
            self.errors.max_traceback_chars = self.fix_max_traceback_chars
            self.observe(self._on_traceback_limit, "fix_max_traceback_chars")

    def _on_traceback_limit(self, change):
        self.errors.max_traceback_chars = change["new"]

    # -- the magic ------------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    def claude(self, line: str = "", cell: str | None = None):
        """Talk to Claude: `%%claude [options]` with a prompt cell; `%claude help` for more."""
        if cell is None:
            return self._subcommand(line)
        try:
            args = cell_parser().parse_args(shlex.split(line))
        except ValueError as exc:          # shlex: unbalanced quotes
            raise UsageError(f"%%claude: {exc} in the options line") from None
        return self._ask(cell, args)

    # -- one cell -------------------------------------------------------------------------
    def _ask(self, cell: str, args):
        fmt = args.format or self.format
        prompt = cell.strip("\n")
        if self.interpolate and not getattr(args, "no_interpolate", False):
            prompt = expand_variables(prompt, self.references())
        if not prompt.strip():
            raise UsageError("%%claude: the cell is empty; write the prompt below the %%claude line.")
        if getattr(args, "new", False):
            self._forget()
        if getattr(args, "agent", False):
            if args.format in ("code", "json"):
                raise UsageError("%%claude --agent answers in markdown; --format code/json "
                                 "don't apply (the agent proposes cells with insert_cell).")
            self._agent_turn(prompt, model=args.model, system=args.system,
                             max_tokens=args.max_tokens, output=args.output,
                             live=self.stream and not args.no_stream)
            return None                 # the exchange is shown; no Out[n] duplicate
        history = self.conversation
        if self.max_history > 0:
            history = history[-2 * self.max_history:]
        system = "\n\n".join(p for p in ((args.system if args.system is not None else self.system),
                                         FORMAT_INSTRUCTIONS.get(fmt, "")) if p)
        live = self.stream and not args.no_stream
        view = LiveView(self.shell, live=live, interval=self.update_interval, fmt=fmt,
                        kernel=self._kernel_display())
        user_turn = {"role": "user", "content": prompt}
        extra = {"output_config": {"format": JSON_OUTPUT_FORMAT}} if fmt == "json" else {}
        stream = None
        try:
            stream = self.client.stream(messages=history + [user_turn],
                                        model=args.model or self.model, system=system or None,
                                        max_tokens=(self.max_tokens if args.max_tokens is None
                                                    else args.max_tokens),
                                        # a structured answer's process is never kept for
                                        # the chat: leave the chat's kept process alone
                                        source="magic", session=None if extra else self.session,
                                        cache=self.cache if args.cache is None else args.cache,
                                        **extra)
            for _ in stream:
                view.feed(stream.text)
            answer = stream.answer
        except ClaudeError as exc:
            view.abandon(stream.text if stream else "", f"error: {exc.type}")
            self._report(exc)
            return None
        except KeyboardInterrupt:
            if stream is not None:
                stream.close()
            view.abandon(stream.text if stream else "", "stopped")
            raise
        self.conversation = self.conversation + [user_turn,
                                                 {"role": "assistant", "content": answer.text}]
        self.last_answer = answer
        rendered, value = self._render(answer, fmt)
        view.finish(rendered)
        if fmt == "code" and rendered.value:
            # Front-ends that ignore this (VS Code, Colab) still have the output's Copy button.
            self._offer_code(rendered.value)
        if args.output:
            self.shell.user_ns[args.output] = value
        return None

    def _offer_code(self, code: str) -> None:
        """Code for the user to review: the next cell (where the frontend supports it)."""
        self.shell.set_next_input(code, replace=False)

    def references(self):
        """What `{...}` in a prompt can name: the user's variables, In, Out, _ and Err."""
        return ReferenceNamespace(self.shell.user_ns, self.errors)

    # -- agent ------------------------------------------------------------------------------
    def agent_tools(self):
        from .approval import approver_for
        from .notebook_tools import KernelTools, Limits
        return KernelTools(self.shell, errors=self.errors, run_mode=self.agent_run,
                           approver=approver_for(self.shell) if self.agent_run == "ask" else None,
                           limits=Limits(max_result_chars=self.agent_max_result_chars,
                                         max_cells=self.agent_max_cells,
                                         approval_timeout=self.agent_approval_timeout),
                           offer_code=self._offer_code)

    def _agent_turn(self, prompt: str, *, model=None, system=None, max_tokens=None, output=None,
                    live=True):
        """One agent cell: the exchange streams into the cell; the chat remembers its answer."""
        from .agent import run_agent
        history = self.conversation
        if self.max_history > 0:
            history = history[-2 * self.max_history:]
        view = LiveView(self.shell, live=live, interval=self.update_interval, fmt="markdown",
                        kernel=self._kernel_display())
        user_turn = {"role": "user", "content": prompt}
        try:
            result = run_agent(self.client, self.agent_tools(), view,
                               messages=history + [user_turn], model=model or self.model,
                               system=(system if system is not None else self.system) or None,
                               max_tokens=self.max_tokens if max_tokens is None else max_tokens,
                               max_rounds=self.agent_max_rounds)
        except ClaudeError as exc:
            view.abandon("", f"error: {exc.type}")
            self._report(exc)
            return None
        self.conversation = self.conversation + [user_turn,
                                                 {"role": "assistant", "content": result.text}]
        self.last_answer = result.answer
        if output:
            self.shell.user_ns[output] = result.text
        return result

    def _render(self, answer, fmt):
        meta = answer.metadata()
        if fmt == "json":
            try:
                value = parse_json_answer(answer.text)
            except ValueError as exc:
                meta = {**meta, "json_error": str(exc)}
                print(f"claude_nb: the answer is not valid JSON ({exc}); shown as text.",
                      file=sys.stderr)
                return Rendered(answer.text, fmt="text", metadata=meta), answer.text
            return Rendered(answer.text, fmt="json", metadata=meta, value=value), value
        if fmt == "code":
            code = extract_code(answer.text)
            return Rendered(answer.text, fmt=fmt, metadata=meta, value=code), answer.text
        return Rendered(answer.text, fmt=fmt, metadata=meta), answer.text

    def _kernel_display(self) -> bool:
        if self.display == "auto":
            return in_kernel(self.shell)
        return self.display == "update"

    @staticmethod
    def _report(exc: ClaudeError) -> None:
        """One clear line, no traceback."""
        where = f" (request {exc.request_id})" if exc.request_id else ""
        print(f"Claude error [{exc.type}]: {exc.message}{where}", file=sys.stderr)

    # -- %claude subcommands --------------------------------------------------------------
    def _subcommand(self, line: str):
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%claude: {exc}") from None
        command = words[0] if words else "help"
        if command not in SUBCOMMANDS:
            raise UsageError(f"%claude: unknown subcommand {command!r}. Subcommands: "
                             + ", ".join(SUBCOMMANDS) + ". To ask Claude, use a %%claude cell.")
        return getattr(self, "_cmd_" + command)(words[1:])

    def _cmd_help(self, _):
        print(HELP)

    def _cmd_fix(self, words):
        from .credentials import Scrubber
        from .fix import fix_prompt, last_error
        args = fix_parser().parse_args(words)
        error = last_error(self.shell, self.errors)
        if error is None:
            print("No failed cell to fix yet: %claude fix looks at the latest cell that raised "
                  "an exception.")
            return None
        fmt = args.format or "markdown"
        prompt = fix_prompt(error, " ".join(args.note), code_only=fmt == "code",
                            scrub=Scrubber(self.shell.user_ns))
        ask = argparse.Namespace(format=fmt, model=args.model, system=None,
                                 max_tokens=args.max_tokens, output=args.output,
                                 no_stream=args.no_stream, new=False, no_interpolate=True,
                                 agent=False, cache=None)
        return self._ask(prompt, ask)

    def _forget(self) -> None:
        if self.conversation:
            self.client.end_session(self.session)
            self.session = new_session_key("magic")
        self.conversation = []

    def _cmd_reset(self, _):
        turns = len(self.conversation) // 2
        self._forget()
        print(f"Conversation cleared ({turns} exchange{'s' if turns != 1 else ''} forgotten).")

    def _cmd_history(self, _):
        if not self.conversation:
            print("No conversation yet.")
            return
        for message in self.conversation:
            who = "you" if message["role"] == "user" else "claude"
            print(f"--- {who}\n{message['content']}")

    def _cmd_models(self, _):
        try:
            models = self.client.models()
        except ClaudeError as exc:
            self._report(exc)
            return None
        rows = [f"| `{m['id']}` | {m.get('display_name', '')} | {m.get('lifecycle', '')} |"
                for m in models]
        table = "| model | name | lifecycle |\n|---|---|---|\n" + "\n".join(rows)
        plain = "\n".join(f"{m['id']:<32} {m.get('display_name', '')}" for m in models)
        return _Table(table, plain)

    def _cmd_status(self, _):
        transport = self.client.transport
        lines = [f"transport:    {transport.describe()}",
                 f"model:        {self.model} (max_tokens {self.max_tokens}, format {self.format})",
                 f"conversation: {len(self.conversation) // 2} exchange(s)"]
        lines.append("cli:          " + _cli_status(transport))
        if self.last_answer is not None:
            a = self.last_answer
            usage = a.usage or {}
            cost = "" if a.cost_usd is None else f", ${a.cost_usd:.4f}" + (" (est.)" if a.cost_estimated else "")
            lines.append(f"last answer:  {a.model}, {usage.get('input_tokens', 0)} in / "
                         f"{usage.get('output_tokens', 0)} out{cost}, {a.request_id}")
        print("\n".join(lines))


class _Table:
    def __init__(self, markdown: str, plain: str):
        self.markdown, self.plain = markdown, plain

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/markdown": self.markdown, "text/plain": self.plain}


def _cli_status(transport) -> str:
    """Which CLI answers, its version against the supported window, and whether it is logged
    in (`claude auth status` makes no request)."""
    try:
        cli = transport.cli_status()
    except (AnthropicError, OSError) as exc:
        return f"unknown ({exc})"
    if not cli.get("found"):
        return cli.get("message") or "not found"
    window = cli.get("supported") or {}
    state = ("logged in" + (f", {cli['auth_method']}" if cli.get("auth_method") else "")
             if cli.get("logged_in") else "NOT logged in (run `claude` in a terminal and log in)")
    line = (f"{cli.get('path')} version {cli.get('version') or 'unknown'} (supported "
            f"{window.get('oldest')} to {window.get('newest_tested')} tested; {state})")
    return "\n".join([line] + [f"              warning: {w}" for w in cli.get("warnings") or []])


def agent(prompt: str, *, model: str | None = None, system: str | None = None,
          max_tokens: int | None = None, run: str | None = None):
    """Let Claude work on this kernel: it looks at variables and cells through tools, runs code
    only after you approve it (`run`: "ask", "never" or "always"; default
    `ClaudeMagics.agent_run`), and answers. The exchange shows in the cell; `%%claude --agent`
    does the same from a cell. Returns an `AgentResult` (`.text`, `.tool_calls`)."""
    from IPython import get_ipython
    shell = get_ipython()
    if shell is None:
        raise RuntimeError("claude_nb.agent() works inside IPython or a Jupyter kernel (it "
                           "answers the model's tools from the running session).")
    magics = shell.magics_manager.registry.get("ClaudeMagics")
    if magics is None:
        magics = getattr(shell, "_claude_nb_agent_magics", None)
        if magics is None:
            magics = shell._claude_nb_agent_magics = ClaudeMagics(shell)
    previous = magics.agent_run
    if run is not None:
        magics.agent_run = run          # validated by the trait: ask | never | always
    try:
        return magics._agent_turn(prompt, model=model, system=system, max_tokens=max_tokens)
    finally:
        magics.agent_run = previous


def load_ipython_extension(shell) -> None:
    shell.register_magics(ClaudeMagics(shell))


def unload_ipython_extension(shell) -> None:
    unhook(shell)
    shell.magics_manager.registry.pop("ClaudeMagics", None)
    shell.magics_manager.magics["cell"].pop("claude", None)
    shell.magics_manager.magics["line"].pop("claude", None)
