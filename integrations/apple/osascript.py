"""AppleScript from Python: string literals no value can break out of, scripts from fixed templates, one runner.

Every value reaches a script as an AppleScript string literal made by
`quote()`, or as a number; scripts are fixed templates in which `render()`
substitutes those literals (string.Template: one pass, so a value is never
read as a placeholder). The runner feeds the script to `osascript -` on
stdin, so email content never shows in `ps`, and maps osascript's errors to
IntegrationError.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from functools import cache
from string import Template
from zoneinfo import ZoneInfo

from django.conf import settings

from integrations.errors import IntegrationError, Unavailable

# Where macOS keeps osascript. Tests point this (or run_script's `osascript=`) elsewhere.
OSASCRIPT = "/usr/bin/osascript"

# Characters that end a line somewhere (Unicode line and paragraph separators,
# NEL): written as \n, so no reader of the script sees a line end in a literal.
_AS_LINEFEED = {"\x85", "\u2028", "\u2029"}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
REPLACEMENT = "\ufffd"

# AppleScript error numbers (osascript prints them last, in parentheses).
_NOT_PERMITTED = {-1743, -1744}  # errAEEventNotPermitted, errAEEventWouldRequireUserConsent
_TRANSIENT = {-600, -609, -1712}  # app not running, connection invalid, Apple event timed out
# "0:40: execution error: Mail got an error: Can't get account "x". (-1728)"
_ERROR_LINE = re.compile(
    r"^(?:\d+:\d+:\s*)?(?:(?:execution|syntax) error:\s*)?(?P<message>.*?)\s*(?:\((?P<number>-?\d+)\))?\s*$", re.S
)
AUTOMATION_HINT = (
    "macOS did not allow Mailroom to control the app: in System Settings > Privacy & Security > Automation, "
    "allow the program that runs Mailroom (Terminal, python, the launch agent) to control Mail, Calendar "
    "and Reminders, then try again."
)


def normalise(value: str) -> str:
    """The text a literal of `value` holds: line separators become LF, other control characters U+FFFD.

    AppleScript has escapes only for tab, return and linefeed; NUL and the
    other C0 and C1 controls, DEL and lone surrogates (not UTF-8) are replaced.
    """
    chars = []
    for char in value:
        code = ord(char)
        if char in _AS_LINEFEED:
            chars.append("\n")
        elif char in "\t\n\r":
            chars.append(char)
        elif code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF:
            chars.append(REPLACEMENT)
        else:
            chars.append(char)
    return "".join(chars)


def quote(value: str) -> str:
    """`value` as an AppleScript string literal, quotes included.

    Only the ASCII double quote delimits an AppleScript string, and inside one
    only the backslash escapes: both are escaped, and tab, CR and LF are
    written as \\t, \\r and \\n, so a literal is always one line and ends only
    at its closing quote. See `normalise` for the other control characters.
    """
    return '"' + "".join(_ESCAPES.get(char, char) for char in normalise(str(value))) + '"'


def quote_list(values: list[str] | tuple[str, ...]) -> str:
    """A list of string literals: {"a", "b"}."""
    return "{" + ", ".join(quote(value) for value in values) + "}"


# Dates are built in the script by date arithmetic from numbers, never parsed
# from text (which depends on the Mac's date format). Templates that take a
# date end with this handler; `render` writes a datetime as a call to it.
DATE_HANDLER = """
on makeDate(theYear, theMonth, theDay, theSeconds)
\tset theDate to current date
\tset day of theDate to 1
\tset year of theDate to theYear
\tset month of theDate to theMonth
\tset day of theDate to theDay
\tset time of theDate to theSeconds
\treturn theDate
end makeDate
"""


@cache
def mac_timezone() -> ZoneInfo:
    """The Mac's own time zone (from /etc/localtime), which Calendar and Reminders show times in."""
    try:
        with open("/etc/localtime", "rb") as tzfile:
            return ZoneInfo.from_file(tzfile, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


def date_expression(moment: datetime, zone: ZoneInfo | None = None) -> str:
    """An aware datetime as `my makeDate(...)`: the wall-clock time on this Mac (or in `zone`), from integers only."""
    local = moment.astimezone(zone or mac_timezone())
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return f"my makeDate({local.year:d}, {local.month:d}, {local.day:d}, {seconds:d})"


def render(template: str, **values: str | list[str] | tuple[str, ...] | int | bool | datetime) -> str:
    """The template with each $name replaced by its value as AppleScript: text as a literal, never as code."""
    rendered = {}
    for name, value in values.items():
        if isinstance(value, bool):
            rendered[name] = "true" if value else "false"
        elif isinstance(value, int):
            rendered[name] = str(int(value))
        elif isinstance(value, datetime):
            rendered[name] = date_expression(value)
        elif isinstance(value, (list, tuple)):
            rendered[name] = quote_list(value)
        else:
            rendered[name] = quote(value)
    return Template(template).substitute(rendered)


def available() -> bool:
    """Whether AppleScript can run here: on macOS, with osascript in its place."""
    return sys.platform == "darwin" and os.access(OSASCRIPT, os.X_OK)


def unavailable_message(app: str) -> str:
    return f"{app} works only on macOS: osascript was not found."


def run_script(script: str, *, timeout: float | None = None, osascript: str | None = None) -> str:
    """Run `script` with osascript (on stdin, never in argv) and return what it printed, without the final newline."""
    executable = osascript or OSASCRIPT
    timeout = timeout or settings.APPLE_SCRIPT_TIMEOUT_SECONDS
    try:
        # A fixed executable; the script goes to its stdin, never into argv.
        completed = subprocess.run(  # noqa: S603
            [executable, "-"],
            input=script.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            env=_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise IntegrationError(f"osascript did not finish within {timeout:g} s; the app may be busy.") from None
    except FileNotFoundError:
        raise Unavailable(unavailable_message("AppleScript")) from None
    except OSError as exc:
        raise IntegrationError(f"osascript could not be started: {exc.strerror}.", permanent=True) from None
    if completed.returncode != 0:
        raise script_error(completed.stderr.decode("utf-8", "replace"), completed.returncode)
    return completed.stdout.decode("utf-8", "replace").removesuffix("\n")


def script_error(stderr: str, returncode: int) -> IntegrationError:
    """osascript's complaint as an IntegrationError: not being allowed is permanent and says what to do."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    match = _ERROR_LINE.match(text)
    message = (match["message"] if match else text)[:300] or f"osascript failed with exit status {returncode}"
    number = int(match["number"]) if match and match["number"] else None
    if number in _NOT_PERMITTED:
        return IntegrationError(f"{message} ({number}). {AUTOMATION_HINT}", permanent=True)
    # Without a number osascript itself failed (killed, crashed): trying again may help.
    transient = number is None or number in _TRANSIENT
    detail = f"AppleScript error {number}: {message}" if number is not None else message
    return IntegrationError(detail, permanent=not transient)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # Django sets TZ to TIME_ZONE; osascript must use the Mac's own zone, as
    # Calendar and Reminders do, or the wall-clock dates from date_expression shift.
    env.pop("TZ", None)
    # Under launchd LANG may be unset, and osascript would print non-ASCII text in another encoding.
    env.setdefault("LANG", "en_US.UTF-8")
    return env
