"""Apple Mail, Calendar and Reminders on this Mac, scripted through osascript.

Importing this package and building its backends works anywhere; off macOS
their health says why they cannot work and every operation raises
Unavailable. See osascript.py for how values are kept out of the code.
"""

from __future__ import annotations

from integrations.apple.events import AppleCalendar, AppleReminders
from integrations.apple.mail import AppleMailBackend, AppleMailbox
from integrations.apple.osascript import available, quote, run_script

__all__ = ["AppleCalendar", "AppleMailBackend", "AppleMailbox", "AppleReminders", "available", "quote", "run_script"]
