"""A real Dovecot IMAP server on the loopback interface, for tests of mail intake as a mail server serves it.

Use the `dovecot` fixture: one Dovecot per test session (`dovecot_server`,
started with a throwaway config in a temporary directory), and for each
test a fresh account with an empty INBOX, so tests never see each other's
mail. On the account:

    dovecot.settings(settings)            # point IMAP_* at this account (pytest-django's `settings`)
    uid = dovecot.append("INBOX", raw)    # put a message in a folder, as delivery would; returns its UID
    with dovecot.client() as client: ...  # a logged-in IMAPClient, to look at or change the folder
    dovecot.flags("INBOX")                # {uid: flags}, to check what polling left unchanged

`plain_dovecot` is the same on a second server that advertises neither MOVE
nor IDLE, for the paths taken with servers that lack them.

Without /usr/sbin/dovecot (Debian: apt-get install dovecot-imapd) the tests
skip, or under CI=true fail.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.processes import LOOPBACK, ServerProcess, free_port, serving
from tests.services import missing

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "imap-test-password"


class DovecotServer(ServerProcess):
    """One `dovecot -F` process (the master, in the foreground; SIGTERM stops its children too) and its directory."""

    name = "Dovecot"

    def __init__(self, capabilities: str = "") -> None:
        if not os.path.exists(DOVECOT):
            missing(f"Dovecot is not installed ({DOVECOT}; Debian: apt-get install dovecot-imapd)")
        super().__init__(prefix="mailroom-dovecot-")
        # A temporary directory, not pytest's tmp_path: its parents are private to our
        # user, and as root Dovecot's own processes run as other users that must reach the files.
        self.root.chmod(0o755)
        self.log = self.root / "dovecot.log"
        self.users = self.root / "users"
        self._users = itertools.count(1)
        self._mail_user: pwd.struct_passwd | None = None
        # What the server advertises after login; "" is Dovecot's full list (MOVE, UIDPLUS, IDLE...).
        self.capabilities = capabilities

    def start(self) -> None:
        self._mail_user = self._prepare_directories()
        super().start()

    def command(self) -> list[str]:
        conf = self.root / "dovecot.conf"
        conf.write_text(self._config(self._mail_user))
        return [DOVECOT, "-F", "-c", str(conf)]

    def add_user(self, password: str = PASSWORD) -> str:
        """A new account with an empty mailbox."""
        user = f"user{next(self._users)}"
        # One passwd file per user: Dovecot looks a changed file up again at most
        # once a second, so users added to one file would be missed for a while.
        passwd = self.users / user
        passwd.write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        passwd.chmod(0o644)  # read by the auth process, which runs as default_internal_user
        return user

    def log_files(self) -> list[Path]:
        return [*super().log_files(), self.log]

    def _prepare_directories(self) -> pwd.struct_passwd:
        """Make the directories and return the user that owns the mail."""
        for name in ("run", "state", "users"):
            (self.root / name).mkdir()
        if os.geteuid() == 0:
            # Dovecot refuses mail access as root ("userdb returned 0 as uid"),
            # whatever first_valid_uid says, so the mail belongs to nobody.
            try:
                mail_user = pwd.getpwnam("nobody")
            except KeyError:
                missing("Dovecot as root needs the user 'nobody' to own the test mail")
        else:
            mail_user = pwd.getpwuid(os.geteuid())
        (self.root / "mail").mkdir()
        os.chown(self.root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        return mail_user

    def _config(self, mail_user: pwd.struct_passwd) -> str:
        if os.geteuid() == 0:
            # The Debian package's users: Dovecot's helpers drop to these.
            users, chroot = "default_internal_user = dovecot\ndefault_login_user = dovenull\n", ""
        else:
            # Not root: every process runs as us, without the chroot only root can do,
            # and the sockets' group must be one of ours.
            me, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
            users = f"default_internal_user = {me}\ndefault_login_user = {me}\ndefault_internal_group = {group}\n"
            chroot = "  chroot =\n"
        return f"""# Throwaway Dovecot for Mailroom's tests: plain IMAP on loopback, a passwd file per user.
protocols = imap
listen = {LOOPBACK}
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
{users}first_valid_uid = {mail_user.pw_uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {self.users}/%u
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={self.root}/mail/%u
}}
service imap-login {{
{chroot}  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# Tests of a wrong password need no 2-second delay, and the logins after them no
# penalty of 2 to 15 s for their address: without this anvil socket, auth skips
# the penalty (login_trusted_networks does not spare 127.0.0.1 in 2.3).
auth_failure_delay = 0
{f"imap_capability = {self.capabilities}" if self.capabilities else ""}
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


@dataclass
class DovecotAccount:
    """One test's account on the session's Dovecot: what tests put mail into and look at."""

    server: DovecotServer
    user: str
    password: str = PASSWORD

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self.server.port

    def client(self) -> IMAPClient:
        """A logged-in client; use it in `with`, which logs out."""
        client = IMAPClient(LOOPBACK, port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, folder: str, raw: bytes, flags: tuple[bytes, ...] = ()) -> int:
        """Put a message in `folder` (created if needed); its UID."""
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            reply = client.append(folder, raw, flags=flags)
        # "[APPENDUID <uidvalidity> <uid>] Append completed."
        return int(reply.split(b"]")[0].split()[-1])

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            client.create_folder(folder)

    def delete_folder(self, folder: str) -> None:
        with self.client() as client:
            client.delete_folder(folder)

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """Each message's flags, read without changing anything."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return client.get_flags(uids) if uids else {}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def settings(self, settings, *, folders: list[str] | None = None, mailbox: str = "support@acme.example") -> None:
        """Point Mailroom's IMAP_* settings (pytest-django's `settings` fixture) at this account."""
        settings.IMAP_HOST = LOOPBACK
        settings.IMAP_PORT = self.port
        settings.IMAP_SSL = False
        settings.IMAP_STARTTLS = False
        settings.IMAP_USER = self.user
        settings.IMAP_PASSWORD = self.password
        settings.IMAP_FOLDERS = folders or ["INBOX"]
        settings.IMAP_MAILBOX = mailbox
        settings.IMAP_TIMEOUT_SECONDS = 10


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on: an IMAP server that is down."""
    return free_port()


@pytest.fixture(scope="session")
def dovecot_server():
    """The session's Dovecot, started on first use."""
    yield from serving(DovecotServer())


@pytest.fixture
def dovecot(dovecot_server) -> DovecotAccount:
    """A fresh account with an empty INBOX on the session's Dovecot."""
    return DovecotAccount(dovecot_server, dovecot_server.add_user())


@pytest.fixture(scope="session")
def plain_dovecot_server():
    """A second Dovecot that advertises neither MOVE nor IDLE, as older servers do (UIDPLUS it keeps)."""
    yield from serving(DovecotServer(capabilities="IMAP4rev1 LITERAL+ SASL-IR UIDPLUS UNSELECT NAMESPACE"))


@pytest.fixture
def plain_dovecot(plain_dovecot_server) -> DovecotAccount:
    """A fresh account on the Dovecot without MOVE and IDLE."""
    return DovecotAccount(plain_dovecot_server, plain_dovecot_server.add_user())
