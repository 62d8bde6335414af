"""Intake: raw messages in (IMAP, API, files, demo), stored once, linked to their thread, flagged, queued."""
