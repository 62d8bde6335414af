"""The AppleScript templates for Mail, Calendar and Reminders, and the functions that fill them in.

Each template sets its variables from literals first and then only uses the
variables, so what a script does never depends on the values: tests compare
every generated script with the template's skeleton. Our own failures are
raised with error number 4404 ("not found"), which the runner maps to a
permanent IntegrationError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote as url_quote

from integrations.apple.osascript import DATE_HANDLER, render

if TYPE_CHECKING:
    from integrations.calendar.ical import Meeting, Reminder

# Separates the fields ARCHIVE_MESSAGE returns, where it is written `character id 31`
# (a literal cannot hold it: quote() replaces control characters). No mailbox name holds it.
FIELD_SEPARATOR = chr(31)

SEND_MESSAGE = """\
set theSubject to $subject
set theContent to $content
set toAddresses to $to
set ccAddresses to $cc
set bccAddresses to $bcc
set senderText to $sender
set accountName to $account
set attachmentPaths to $attachments
set attachmentFiles to {}
repeat with attachmentPath in attachmentPaths
\tset end of attachmentFiles to (POSIX file (contents of attachmentPath))
end repeat
tell application "Mail"
\tif accountName is not "" then set senderText to item 1 of (email addresses of account accountName)
\tset newMessage to make new outgoing message with properties {subject:theSubject, content:theContent, visible:false}
\ttell newMessage
\t\tif senderText is not "" then set sender to senderText
\t\trepeat with theAddress in toAddresses
\t\t\tmake new to recipient at end of to recipients with properties {address:(contents of theAddress)}
\t\tend repeat
\t\trepeat with theAddress in ccAddresses
\t\t\tmake new cc recipient at end of cc recipients with properties {address:(contents of theAddress)}
\t\tend repeat
\t\trepeat with theAddress in bccAddresses
\t\t\tmake new bcc recipient at end of bcc recipients with properties {address:(contents of theAddress)}
\t\tend repeat
\tend tell
\ttell content of newMessage
\t\trepeat with attachmentFile in attachmentFiles
\t\t\tmake new attachment with properties {file name:(contents of attachmentFile)} at after last paragraph
\t\tend repeat
\tend tell
\t-- Mail adds attachments asynchronously; sending at once can drop them.
\tif (count of attachmentFiles) > 0 then delay 1
\tsend newMessage
\treturn "sent"
end tell
"""

ARCHIVE_MESSAGE = """\
set theMessageId to $message_id
set accountName to $account
set archiveName to $archive
tell application "Mail"
\tif accountName is "" then
\t\tset found to (messages of inbox whose message id is theMessageId)
\telse
\t\tset found to (messages of mailbox "INBOX" of account accountName whose message id is theMessageId)
\tend if
\tif (count of found) is 0 then error "No message with this Message-ID is in the inbox." number 4404
\tset theMessage to item 1 of found
\tset sourceBox to mailbox of theMessage
\tset sourceAccount to name of account of sourceBox
\tmove theMessage to mailbox archiveName of account sourceAccount
\treturn sourceAccount & (character id 31) & (name of sourceBox)
end tell
"""

RESTORE_MESSAGE = """\
set theMessageId to $message_id
set accountName to $account
set archiveName to $archive
set sourceName to $mailbox
tell application "Mail"
\tset found to (messages of mailbox archiveName of account accountName whose message id is theMessageId)
\tif (count of found) is 0 then error "The message is no longer in the archive mailbox." number 4404
\tmove (item 1 of found) to mailbox sourceName of account accountName
\treturn "restored"
end tell
"""


@dataclass(frozen=True)
class MarkedItems:
    """How scripts reach our items in Calendar or Reminders, as fixed AppleScript words (never values).

    The items live in one container (a calendar, a list) that a template names
    from $container, and are found again by the marker ($marker) each one carries.
    """

    app: str  # the application: "Calendar"
    container: str  # the container's class: "calendar"
    item: str  # the item's class: "event"
    marked: str  # the test an item carrying theMarker passes: "url is theMarker"
    own_id: str  # the property holding the app's own id for an item: "uid"

    def template(self, *, variables: str, steps: str) -> str:
        """A template that sets containerName, theMarker and then `variables`, and runs `steps` in the container."""
        return (
            "set containerName to $container\n"
            "set theMarker to $marker\n"
            f"{variables}"
            f'tell application "{self.app}"\n'
            f"\ttell {self.container} containerName\n"
            f"{steps}"
            "\tend tell\n"
            "end tell\n"
        )

    @property
    def found(self) -> str:
        """The items that carry the marker."""
        return f"(every {self.item} whose {self.marked})"

    def delete_each(self, items: str) -> str:
        """The steps that delete every item in `items` (an expression or a variable)."""
        return f"\t\trepeat with oldItem in {items}\n\t\t\tdelete oldItem\n\t\tend repeat\n"

    def replace(self, *, variables: str, make: str) -> str:
        """A template that deletes the items carrying the marker, then runs `make`, which makes the new one."""
        return self.template(variables=variables, steps=self.delete_each(self.found) + make)

    def delete(self) -> str:
        """A template that deletes the items carrying the marker, or else the one whose own id is $uid: the count."""
        by_own_id = f"(every {self.item} whose {self.own_id} is theUid)"
        return self.template(
            variables="set theUid to $uid\n",
            steps=(
                f"\t\tset oldItems to {self.found}\n"
                f"\t\tif (count of oldItems) is 0 then set oldItems to {by_own_id}\n"
                "\t\tset deletedCount to count of oldItems\n"
                f"{self.delete_each('oldItems')}"
                "\t\treturn deletedCount as text\n"
            ),
        )

    def health(self) -> str:
        """A template that returns "ok" when the app has the container named $container, or else says it has not."""
        return (
            "set containerName to $container\n"
            f'tell application "{self.app}"\n'
            f"\tif not (exists {self.container} containerName) then "
            f'return "{self.app} has no {self.container} named " & containerName & "."\n'
            '\treturn "ok"\n'
            "end tell\n"
        )


# Calendar keeps our marker in an event's URL; reminders have none, so it ends their notes.
EVENTS = MarkedItems(app="Calendar", container="calendar", item="event", marked="url is theMarker", own_id="uid")
REMINDERS = MarkedItems(
    app="Reminders", container="list", item="reminder", marked="body contains theMarker", own_id="id"
)

SAVE_EVENT = (
    EVENTS.replace(
        variables="""\
set theSummary to $summary
set theLocation to $location
set theDescription to $description
set attendeeAddresses to $attendees
set startDate to $start
set endDate to $end
""",
        make="""\
\t\tset newEvent to make new event with properties {summary:theSummary, start date:startDate, end date:endDate}
\t\ttell newEvent
\t\t\tset location to theLocation
\t\t\tset description to theDescription
\t\t\tset url to theMarker
\t\tend tell
\t\trepeat with theAddress in attendeeAddresses
\t\t\ttell newEvent to make new attendee at end of attendees with properties {email:(contents of theAddress)}
\t\tend repeat
\t\treturn uid of newEvent
""",
    )
    + DATE_HANDLER
)

DELETE_EVENT = EVENTS.delete()

SAVE_REMINDER = (
    REMINDERS.replace(
        variables="""\
set theName to $name
set theBody to $body
set dueDate to $due
""",
        make="""\
\t\tset newReminder to make new reminder at end of reminders with properties {name:theName, body:theBody}
\t\tset due date of newReminder to dueDate
\t\tset remind me date of newReminder to dueDate
\t\treturn id of newReminder
""",
    )
    + DATE_HANDLER
)

DELETE_REMINDER = REMINDERS.delete()

# Health: one run that proves osascript works, the app answers and we may
# script it (-1743 otherwise), and the configured account, calendar or list exists.
MAIL_HEALTH = """\
set accountName to $account
tell application "Mail"
\tif accountName is not "" then
\t\tif not (exists account accountName) then return "Mail has no account named " & accountName & "."
\tend if
\treturn "ok"
end tell
"""

CALENDAR_HEALTH = EVENTS.health()
REMINDERS_HEALTH = REMINDERS.health()


def send_message(
    *,
    subject: str,
    content: str,
    to: list[str],
    cc: list[str],
    bcc: list[str],
    sender: str,
    account: str,
    attachments: list[str],
) -> str:
    """Mail.app: compose a message invisibly, address it, attach files (POSIX paths) and send it."""
    return render(
        SEND_MESSAGE,
        subject=subject,
        content=content,
        to=to,
        cc=cc,
        bcc=bcc,
        sender=sender,
        account=account,
        attachments=attachments,
    )


def archive_message(*, message_id: str, account: str, archive: str) -> str:
    """Mail.app: move the inbox message with this Message-ID (no angle brackets) to the archive mailbox."""
    return render(ARCHIVE_MESSAGE, message_id=message_id, account=account, archive=archive)


def restore_message(*, message_id: str, account: str, archive: str, mailbox: str) -> str:
    """Mail.app: move the message back from the archive mailbox to `mailbox` of `account`."""
    return render(RESTORE_MESSAGE, message_id=message_id, account=account, archive=archive, mailbox=mailbox)


def event_marker(uid: str) -> str:
    """What an event's URL holds to say which meeting it is: Calendar makes its own UIDs and ours cannot be set."""
    return "mailroom:event:" + url_quote(uid, safe="@.-_")


def reminder_marker(uid: str) -> str:
    """The last line of a reminder's notes, which says which reminder it is (reminders have no URL to keep it in)."""
    return f"[mailroom:{uid}]"


def save_event(*, calendar: str, meeting: Meeting) -> str:
    """Calendar.app: replace the meeting's event (found by its marker) with a new one."""
    return render(
        SAVE_EVENT,
        container=calendar,
        marker=event_marker(meeting.uid),
        summary=meeting.title,
        location=meeting.location,
        description=meeting.description,
        attendees=list(meeting.attendees),
        start=meeting.start,
        end=meeting.end,
    )


def delete_event(*, calendar: str, uid: str) -> str:
    """Calendar.app: delete the meeting's event, found by its marker or by Calendar's own UID; print the count."""
    return render(DELETE_EVENT, container=calendar, marker=event_marker(uid), uid=uid)


def save_reminder(*, reminders_list: str, reminder: Reminder) -> str:
    """Reminders.app: replace the reminder (found by its marker) with one due, and reminding, at its due time."""
    marker = reminder_marker(reminder.uid)
    notes = f"{reminder.description}\n\n{marker}" if reminder.description else marker
    return render(
        SAVE_REMINDER, container=reminders_list, marker=marker, name=reminder.title, body=notes, due=reminder.due
    )


def delete_reminder(*, reminders_list: str, uid: str) -> str:
    """Reminders.app: delete the reminder, found by its marker or by Reminders' own id; print the count."""
    return render(DELETE_REMINDER, container=reminders_list, marker=reminder_marker(uid), uid=uid)


def mail_health(*, account: str) -> str:
    return render(MAIL_HEALTH, account=account)


def calendar_health(*, calendar: str) -> str:
    return render(CALENDAR_HEALTH, container=calendar)


def reminders_health(*, reminders_list: str) -> str:
    return render(REMINDERS_HEALTH, container=reminders_list)
