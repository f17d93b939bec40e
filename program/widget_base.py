"""What every widget shares: its address, its display (HTML bound to the page's hub), the one
persister thread that re-renders displays so the notebook saves what the user saw, and the end
of the program, when every live widget is re-rendered disabled. The kinds are in
`widget_kinds`, the layouts in `widget_layout`; `commrouter.program.widgets` exports them all.
"""

from __future__ import annotations

import atexit
import html
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import commrouter.program as program

# Runs a widget's binding once the page's hub (of version 3 at least: one link per kernel)
# exists; the install script may come later, and replaces an older hub.
WHEN_READY = (
    "(cb => globalThis.commrouter && globalThis.commrouter.version >= 3 ? "
    "cb(globalThis.commrouter) : "
    "(globalThis.commrouterPending = globalThis.commrouterPending || []).push(cb))"
)
# The page's hub, shipped next to this package (commrouter/frontend/commrouter.js).
HUB_SOURCE = Path(__file__).resolve().parent.parent / "frontend" / "commrouter.js"
_bootstrap: dict[str, str] = {}  # the display that carries the hub, and its script


def hub_bootstrap(display_id: str, ended: bool) -> str:
    """The page's hub and its `connect` for this kernel, in the first display of a widget (or
    layout) the program shows, and only there: saved with the notebook, it lets a reloaded
    page or a second tab link itself while the program lives and show the current state
    without a re-run. Not in a display whose program ended (nothing to link to), nor when the
    kernel did not give the page's config."""
    if ended:
        return ""
    if not _bootstrap:
        _bootstrap.update(owner=display_id, script=_bootstrap_script(program.link().page))
    return _bootstrap["script"] if _bootstrap["owner"] == display_id else ""


def _bootstrap_script(page: str) -> str:
    try:
        config = json.loads(page) if page else None
        source = HUB_SOURCE.read_text(encoding="utf-8")
    except (ValueError, OSError):
        return ""
    if not isinstance(config, dict) or not config.get("kernel_id") or "</script" in source:
        return ""
    call = json.dumps(config).replace("</", "<\\/")
    return f"<script>{source}\nglobalThis.commrouter.connect({call});</script>"


ENDED_NOTE = "program ended"
ENDED_HINT = "The program ended: this widget no longer reaches it (run the cell again)."

# One stylesheet, in every display (a saved notebook shows it without the others). Colours are
# JupyterLab's theme variables (light and dark), with fallbacks for other front-ends.
STYLE = """<style>
.commrouter-widget { display: flex; align-items: center; gap: 8px; margin: 2px 0;
  min-height: 28px; font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px); color: var(--jp-ui-font-color1, #212121); }
[data-jp-theme-light="false"] .commrouter-widget { color-scheme: dark; }
.commrouter-widget .commrouter-name { flex: 0 0 var(--commrouter-label-width, 120px);
  text-align: right; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.commrouter-widget .commrouter-control { display: flex; align-items: center; gap: 6px; }
.commrouter-widget input[type="text"], .commrouter-widget input[type="number"],
.commrouter-widget select { box-sizing: border-box; height: 28px; min-width: 180px;
  padding: 2px 6px; font: inherit; color: var(--jp-ui-font-color1, #212121);
  background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd);
  border-radius: 2px; }
.commrouter-widget button { box-sizing: border-box; height: 28px; padding: 2px 14px;
  font: inherit; color: var(--jp-ui-font-color1, #212121);
  background: var(--jp-layout-color2, #eee); border: 1px solid var(--jp-border-color1, #bdbdbd);
  border-radius: 2px; cursor: pointer; }
.commrouter-widget button:hover:enabled { background: var(--jp-layout-color3, #e0e0e0); }
.commrouter-widget input[type="range"], .commrouter-widget progress { width: 220px;
  accent-color: var(--jp-brand-color1, #1976d2); }
.commrouter-widget input[type="checkbox"] { width: 16px; height: 16px; margin: 0;
  accent-color: var(--jp-brand-color1, #1976d2); }
.commrouter-widget :focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2);
  outline-offset: 1px; }
.commrouter-widget output { min-width: 3em; font-variant-numeric: tabular-nums; }
.commrouter-widget .commrouter-ended { color: var(--jp-ui-font-color2, #757575);
  font-style: italic; font-size: var(--jp-ui-font-size0, 11px); }
.commrouter-widget[data-ended] { opacity: 0.7; }
.commrouter-box .commrouter-widget .commrouter-ended { display: none; }
.commrouter-layout-ended { display: block;
  margin: 2px 0 0 calc(var(--commrouter-label-width, 120px) + 8px); }
.commrouter-widget[data-ended] * { cursor: not-allowed; }
.commrouter-box { display: flex; gap: 4px 16px; align-items: flex-start; }
.commrouter-hbox { flex-direction: row; flex-wrap: wrap; }
.commrouter-vbox { flex-direction: column; }
</style>"""


def attr(value: Any) -> str:
    """`value` as an HTML attribute value (quotes escaped)."""
    return html.escape(str(value), quote=True)


class _Persister:
    """One daemon thread for every widget of the program: re-renders a widget `persist_after`
    seconds after a change (a page change postpones it, so a drag is not interrupted; a program
    change does not, so a long run of them is still saved now and then). No thread is started
    per value, and what is still due is re-rendered when the program exits (`flush`)."""

    def __init__(self) -> None:
        self._due: dict[Any, float] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def touch(self, widget: Any, delay: float, postpone: bool = True) -> None:
        """Persist `widget` `delay` seconds from now; a later touch postpones it, unless
        `postpone` is false (then a persist already due keeps its time)."""
        with self._cond:
            if postpone or widget not in self._due:
                self._due[widget] = time.monotonic() + delay
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="commrouter-widgets", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def forget(self, widget: Any) -> None:
        with self._cond:
            self._due.pop(widget, None)

    def take(self) -> list[Any]:
        """Every widget that is due, now removed from the schedule."""
        with self._cond:
            due = list(self._due)
            self._due.clear()
        return due

    def flush(self) -> None:
        """Persist every widget that is due, now."""
        for widget in self.take():
            _persist_reporting(widget)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                ready = [w for w, at in self._due.items() if at <= now]
                for widget in ready:
                    del self._due[widget]
                if not ready:
                    wait = min(self._due.values(), default=now + 3600.0) - now
                    self._cond.wait(wait)
                    continue
            for widget in ready:  # outside the lock: publishing may block on the pipe
                try:
                    widget._persist()
                except program.ProgramLinkError:
                    pass  # the link ended (unloaded, closed): no display left to update
                except Exception:  # noqa: BLE001 - reported; the other widgets keep persisting
                    traceback.print_exc(file=sys.stderr)


def _persist_reporting(widget: Any) -> None:
    try:
        widget._persist()
    except program.ProgramLinkError:
        pass  # the kernel ended the link: there is no display left to update
    except Exception:  # noqa: BLE001 - reported; the other widgets are still saved
        traceback.print_exc(file=sys.stderr)


class _Displays:
    """The displays this program showed (widgets and layouts), for the end of the program."""

    def __init__(self) -> None:
        self._shown: dict[Any, None] = {}
        self._lock = threading.Lock()

    def add(self, shown: Any) -> None:
        with self._lock:
            self._shown[shown] = None

    def take(self) -> list[Any]:
        with self._lock:
            shown = list(self._shown)
            self._shown.clear()
        return shown


persister = _Persister()
displays = _Displays()


def end_all() -> None:
    """The program ends: re-render every display it showed as ended (disabled, with a hint),
    with its last values, so that the page and the saved notebook show no live-looking widget.
    Registered with `atexit` (the reference kernel's programs); the IPython host calls it when
    it stops (kernel shutdown, `%unload_ext`). Idempotent."""
    persister.take()  # each display is re-rendered below, with its current value
    for shown in displays.take():
        shown._end()
        _persist_reporting(shown)


atexit.register(end_all)


class Widget:
    """Base of every widget. Subclasses give `kind`, the element and its binding script."""

    kind: ClassVar[str] = "widget"
    persist_after: ClassVar[float] = 0.5  # seconds of quiet before a user change is persisted
    labelable: ClassVar[bool] = True  # its element is a form control a <label for> can name

    def __init__(self, value: Any, label: str = "", address: str | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        # a stable address lets other cells (other programs) find the widget's value
        self.address = address or f"/{self.kind}/{self.id}"
        self._stable = address is not None
        self.display_id = f"commrouter-{self.kind}-{self.id}"
        self.label = label
        self._value = value
        self._callbacks: list[Callable[[Any], None]] = []
        self._subscription: program.Subscription | None = None
        self._lock = threading.Lock()
        self._ended = False
        self._container: Any = None  # the layout that displays this widget, if any

    # ---------------------------------------------------------------------- program API

    def show(self) -> Widget:
        """Display the widget in the cell's output and follow the page's changes."""
        if self._container is not None:
            raise RuntimeError(f"{self!r} is shown by its layout; show the layout")
        program.display(self._html(), display_id=self.display_id)
        displays.add(self)
        self._follow()
        return self

    @property
    def value(self) -> Any:
        with self._lock:
            return self._value

    @value.setter
    def value(self, value: Any) -> None:
        """Send `value` to the page; the saved display follows within `persist_after`."""
        with self._lock:
            self._value = value
        program.send(self.address, value)
        persister.touch(self, self.persist_after, postpone=False)

    def on_change(self, callback: Callable[[Any], None]) -> None:
        """Call `callback(value)` (on the program's callback thread) for every page change."""
        self._callbacks.append(callback)

    def listen(self) -> program.Listener:
        """Iterate over the page's changes to this widget."""
        return program.listen(self.address)

    def close(self) -> None:
        """Stop following the page."""
        if self._subscription is not None:
            program.unsubscribe(self._subscription)
            self._subscription = None
        persister.forget(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    # ---------------------------------------------------------------------- internals

    def _follow(self) -> None:
        """Subscribe to the page's changes. A stable address may already hold a value on the
        page (an earlier run of the cell): the program's value is sent, so that page, program
        and saved notebook agree on it (re-running a cell runs its code, initial values too)."""
        if self._subscription is None:
            self._subscription = program.subscribe(self.address, self._received)
        if self._stable:
            program.send(self.address, self.value)

    def _received(self, value: Any) -> None:
        with self._lock:
            self._value = value
        persister.touch(self, self.persist_after)
        for callback in self._callbacks:
            callback(value)

    def _end(self) -> None:
        self._ended = True

    def _persist(self) -> None:
        """Re-render the display with the current value (what the notebook saves)."""
        if self._container is not None:
            self._container._persist()
        else:
            program.update_display(self.display_id, self._html())

    def _html(self) -> dict[str, str]:
        hub = hub_bootstrap(self.display_id, self._ended)
        return {"text/html": STYLE + hub + self._markup(), "text/plain": repr(self)}

    def _markup(self) -> str:
        """The widget's element and its binding script (without the stylesheet)."""
        element_id = f"{self.display_id}-{uuid.uuid4().hex[:6]}"
        control_id = f"{element_id}-control"
        ended = self._ended
        name = ""
        if self.label:
            tag = "label" if self.labelable else "span"
            target = f' for="{control_id}"' if self.labelable else ""
            name = f'<{tag} class="commrouter-name"{target}>{html.escape(self.label)}</{tag}>'
        state = f' data-ended title="{attr(ENDED_HINT)}"' if ended else ""
        note = f'<small class="commrouter-ended">{ENDED_NOTE}</small>' if ended else ""
        binding = "" if ended else self.binding()
        kernel = program.kernel_id()
        return (
            f'<div class="commrouter-widget commrouter-{self.kind}" id="{element_id}" '
            f'data-address="{attr(self.address)}" data-kernel-id="{attr(kernel)}"{state}>'
            f'{name}<div class="commrouter-control">{self.element(control_id)}</div>{note}</div>'
            f"<script>{WHEN_READY}(hub => {{ const root = document.getElementById("
            f"{json.dumps(element_id)}); if (!root) return;"
            # a re-render keeps the live element of this page (its focus, what is being typed)
            f" if (!hub.mountWidget({json.dumps(self.display_id)}, root, {json.dumps(ended)}))"
            " return;"
            # JupyterLab's shortcuts take arrows, Home/End and Enter before the controls do
            " root.addEventListener('keydown', event => event.stopPropagation());"
            f" const control = root.querySelector('.commrouter-control');"
            f" const k = hub.kernel({json.dumps(kernel)}); {binding} }});</script>"
        )

    def synced(self) -> str:
        """JavaScript: `const v`, the page's synced variable for the widget's address (its
        initial value is not sent: the program has it)."""
        return (
            f"const v = k.newSyncedVariable({json.dumps(self.address)}, "
            f"{json.dumps(self.value)}, {{ send: false }});"
        )

    def disabled(self) -> str:
        """` disabled` once the program has ended (for the element's form control)."""
        return " disabled" if self._ended else ""

    attr = staticmethod(attr)

    def aria(self, fallback: str) -> str:
        """The control's accessible name: its label, else `fallback`."""
        return f' aria-label="{attr(self.label or fallback)}"'

    def element(self, control_id: str) -> str:
        """The widget's HTML; its form control has id `control_id`."""
        raise NotImplementedError

    def binding(self) -> str:
        """JavaScript run with `hub`, `k` (the kernel's link), `root` (the widget's element)
        and `control` (the element of `element()`, without the label)."""
        raise NotImplementedError
