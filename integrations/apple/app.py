"""What every Apple backend shares: the Mac check, running its scripts, and its health check."""

from __future__ import annotations

from typing import ClassVar

from integrations.apple.osascript import available, run_script, unavailable_message
from integrations.base import Health
from integrations.errors import IntegrationError, Unavailable


class AppleApp:
    """Mixin for a Backend that scripts one app of this Mac. Builds anywhere; works only on macOS."""

    # How people know the app, for messages: "Apple Mail".
    app: ClassVar[str]

    def run(self, script: str) -> str:
        """Run one of our scripts; off macOS, Unavailable with a clear message."""
        if not available():
            raise Unavailable(unavailable_message(self.app))
        return run_script(script)

    def health_script(self) -> str:
        """A script that prints "ok" when the app answers and holds what the settings name, or else why not."""
        raise NotImplementedError

    def health(self) -> Health:
        if not available():
            return self.unhealthy(unavailable_message(self.app))
        try:
            answer = self.run(self.health_script())
        except IntegrationError as exc:
            return self.unhealthy(f"{self.app}: {exc}")
        if answer != "ok":
            return self.unhealthy(answer)
        return self.healthy(f"{self.app} answers.")
