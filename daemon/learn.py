"""MIDI learn: bind the next controller that moves to a role, and keep it in the config file.

Two ways in:

- ``affetto learn`` asks for a role, waits for the next CC that moves, and
  writes ``<role>_cc`` into the TOML file (see :func:`save_settings`).
- In the daemon, ``learn_trigger = "cc 102"`` (a button: a press is a value
  of 64 or more after one below) or ``"note 36"`` (a note-on) arms a learn
  step: the next CC that moves is bound to the next role in turn (emotion,
  valence, arousal, temperature, guidance, density, texture, then emotion again) and
  logged with the line to put in the config. Nothing is prompted or written
  there: a daemon does not ask questions.

"Moves": a controller's first message only records its value; it is bound
once a later value differs from that by more than ``jitter`` (3 steps), so a
noisy fader or a controller resending its state binds nothing.

Valence and arousal are an XY pair: one without the other is not a valid
configuration, so binding one waits for the other before either is applied.
A CC that another role held is taken from it.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import time
from pathlib import Path
from typing import Any

from affetto.daemon.config import DaemonConfig, parse_trigger
from affetto.daemon.midi import CONTROL_CHANGE, KIND, NOTE_OFF, NOTE_ON
from affetto.errors import ConfigError

log = logging.getLogger(__name__)

ROLES = ("emotion", "valence", "arousal", "temperature", "guidance", "density", "texture")
PAIR = {"valence": "arousal", "arousal": "valence"}
JITTER = 3


class MoveDetector:
    """The first controller whose value moves more than ``jitter`` from the first value seen of it."""

    def __init__(self, jitter: int = JITTER, ignore: tuple[int, ...] = ()) -> None:
        self.jitter = jitter
        self.ignore = set(ignore)
        self._first: dict[int, int] = {}

    def feed(self, control: int, value: int) -> int | None:
        if control in self.ignore or not 0 <= control <= 119 or not 0 <= value <= 127:
            return None  # 120..127 are channel mode messages, not controllers
        first = self._first.setdefault(control, value)
        return control if abs(value - first) > self.jitter else None

    def reset(self) -> None:
        self._first.clear()


def bind(config: DaemonConfig, bindings: dict[str, int]) -> DaemonConfig:
    """``config`` with each role in ``bindings`` on its CC; a role that held one of those CCs lets
    go of it (both of the XY pair, which only work together)."""
    unknown = sorted(set(bindings) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown role(s) {', '.join(unknown)}: choose from {', '.join(ROLES)}")
    values = {f"{role}_cc": getattr(config, f"{role}_cc") for role in ROLES}
    taken = set(bindings.values())
    for role in ROLES:
        if role not in bindings and values[f"{role}_cc"] in taken:
            values[f"{role}_cc"] = None
            if role in PAIR and PAIR[role] not in bindings:
                values[f"{PAIR[role]}_cc"] = None
    for role, cc in bindings.items():
        values[f"{role}_cc"] = cc
    return dataclasses.replace(config, **values)


def cc_settings(config: DaemonConfig) -> dict[str, int | None]:
    """The ``<role>_cc`` settings of ``config``, for :func:`save_settings`."""
    return {f"{role}_cc": getattr(config, f"{role}_cc") for role in ROLES}


class LearnStep:
    """The daemon's learn step, fed every channel message before the controls see it."""

    def __init__(self, controls: Any, trigger: tuple[str, int]) -> None:
        self.controls = controls  # its ``config`` is replaced by each binding
        self.kind, self.number = trigger
        self.detector = MoveDetector(ignore=(self.number,) if self.kind == "cc" else ())
        self.armed = False
        self._next = 0  # index into ROLES
        self._pending: dict[str, int] = {}  # half of the XY pair
        self._button_down = False
        self.learned: list[tuple[str, int]] = []

    @classmethod
    def from_config(cls, config: DaemonConfig, controls: Any) -> LearnStep | None:
        trigger = getattr(config, "learn_trigger", None)
        return None if trigger is None else cls(controls, parse_trigger(trigger))

    @property
    def role(self) -> str:
        return ROLES[self._next]

    def take(self, kind: int, d1: int, d2: int) -> bool:
        """Handle one channel message (status without channel); True when it was the learn step's."""
        if self._is_trigger(kind, d1, d2):
            return True
        if not self.armed or kind != CONTROL_CHANGE:
            return False
        cc = self.detector.feed(d1, d2)
        if cc is not None:
            self._bind(cc)
        return True  # while armed, controllers are being learned, not played

    def _is_trigger(self, kind: int, d1: int, d2: int) -> bool:
        if self.kind == "note" and kind in (NOTE_ON, NOTE_OFF) and d1 == self.number:
            if kind == NOTE_ON and d2 > 0:
                self._arm()
            return True
        if self.kind == "cc" and kind == CONTROL_CHANGE and d1 == self.number:
            down = d2 >= 64
            if down and not self._button_down:
                self._arm()
            self._button_down = down
            return True
        return False

    def _arm(self) -> None:
        self.armed = True
        self.detector.reset()
        log.info("learn: move the control for %s", self.role)

    def _bind(self, cc: int) -> None:
        role = self.role
        self.armed = False
        self._next = (self._next + 1) % len(ROLES)
        self.learned.append((role, cc))
        if role in PAIR and PAIR[role] not in self._pending:
            self._pending[role] = cc
            log.info("learn: %s <- CC %d (applied once %s is learned too)", role, cc, PAIR[role])
            return
        bindings = {**self._pending, role: cc}
        self._pending = {}
        try:
            self.controls.config = bind(self.controls.config, bindings)
        except ConfigError as err:
            log.warning("learn: %s <- CC %d not applied: %s", role, cc, err)
            return
        lines = ", ".join(f"{r}_cc = {c}" for r, c in bindings.items())
        log.info("learn: %s <- CC %d (to keep it, put `%s` in the config file)", role, cc, lines)


# -- the config file ------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise ConfigError(f"cannot write {value!r} to a TOML config")


def save_settings(path: str | Path, settings: dict[str, Any]) -> DaemonConfig:
    """Write ``settings`` into the TOML config at ``path``, keeping everything else (comments too).

    A key already there is rewritten in place; a new one goes at the end of the daemon's table (the
    ``[daemon]`` table where the file has one, else the top-level keys); ``None`` removes the key.
    The result must load as a valid config, else the file is left as it was. Returns the config.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines()
    if text:
        DaemonConfig.load(path)  # refuse to edit a file that is broken already
    tables = [i for i, line in enumerate(lines) if re.match(r"^\s*\[", line)]
    daemon = next((i for i in tables if re.match(r"^\s*\[\s*daemon\s*\]", lines[i])), None)
    if daemon is not None:
        start = daemon + 1
        end = next((i for i in tables if i > daemon), len(lines))
    else:
        start, end = 0, tables[0] if tables else len(lines)
    for key, value in settings.items():
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=|^\s*{re.escape(key.replace('_', '-'))}\s*=")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), None)
        if found is not None:
            if value is None:
                del lines[found]
                end -= 1
            else:
                lines[found] = f"{key} = {_toml_value(value)}"
            continue
        if value is None:
            continue
        at = end
        while at > start and not lines[at - 1].strip():
            at -= 1  # after the table's last line, before its trailing blank lines
        lines.insert(at, f"{key} = {_toml_value(value)}")
        end += 1
    new_text = "\n".join(lines) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new_text, encoding="utf-8")
    try:
        config = DaemonConfig.load(tmp)
    except ConfigError:
        tmp.unlink()
        raise
    tmp.replace(path)
    return config


def wait_for_move(inbox: queue.Queue, detector: MoveDetector, timeout_s: float) -> int | None:
    """The CC of the first controller that moves among the inbox's ``(t_ns, status, d1, d2)``
    messages, or None after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while (left := end - time.monotonic()) > 0:
        try:
            item = inbox.get(timeout=left)
        except queue.Empty:
            break
        if type(item) is tuple and len(item) == 4 and item[1] & KIND == CONTROL_CHANGE:
            cc = detector.feed(item[2], item[3])
            if cc is not None:
                return cc
    return None
