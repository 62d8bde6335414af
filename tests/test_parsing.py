"""Parsing raw mail: the shared corpus of real, broken messages, and crafted bytes for each rule.

The corpus is tests/corpus/, a copy of the team's shared corpus (third-party
fixtures, kept unchanged; see its MANIFEST.md); MAILROOM_CORPUS points the
tests at another copy. Without it these tests skip on a developer's machine
and fail under CI=true.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from pathlib import Path

import pytest

from actions.intake import parsing
from actions.intake.htmltext import html_to_text
from actions.intake.parsing import ParsedMessage, Unparseable, parse_message, safe_filename
from tests.services import missing

# A copy of the shared corpus is kept in the repository, so a clean clone tests against it.
CORPUS = Path(os.environ.get("MAILROOM_CORPUS") or Path(__file__).resolve().parent / "corpus")
PUBLIC = CORPUS / "public"
# Everything in the corpus folder is a message, except these two and one message with no sender at all.
NOT_MAIL = {".gitattributes", "MANIFEST.md"}
NO_SENDER = {"mikel-mail/bad_encoded_subject.eml"}
NO_FROM = "The message has no From address, so there is nobody to answer."
# What the damage test inserts: the bytes that delimit things in mail.
DELIMITERS = [b"\r", b"\n", b"=?", b"?=", b'"', b"<", b";", b"*0*=", b"--", b"\xff"]


def corpus_file(relative: str) -> Path:
    """A corpus file's path; skips (fails under CI) when the corpus is missing."""
    path = PUBLIC / relative
    if not path.is_file():
        missing(f"The mail corpus file {path} is missing (set MAILROOM_CORPUS to the corpus folder)")
    return path


def parse_corpus(relative: str) -> ParsedMessage:
    return parse_message(corpus_file(relative).read_bytes())


def _corpus_params() -> list:
    files = sorted(str(path.relative_to(PUBLIC)) for path in PUBLIC.rglob("*") if path.is_file())
    return files or [pytest.param(None, id="corpus-missing")]


def _mail(*headers: str, body: str = "Hello.\r\n", ending: str = "\r\n") -> bytes:
    """A message from crafted header lines and a body, with the given line ending."""
    lines = [*headers, "", body]
    return ending.join(lines).replace("\r\n", ending).encode("utf-8", "surrogateescape")


# --- The whole corpus -----------------------------------------------------------------------


@pytest.mark.security
@pytest.mark.parametrize("relative", _corpus_params())
def test_every_corpus_file_parses_or_is_refused_with_a_reason(relative):
    if relative is None:
        missing(f"The mail corpus is not at {PUBLIC} (set MAILROOM_CORPUS to the corpus folder)")
    try:
        parsed = parse_message((PUBLIC / relative).read_bytes())
    except Unparseable as exc:
        assert str(exc).strip()
        assert not str(exc).startswith("Parsing failed"), "an unexpected error inside the parser"
        return
    assert "@" in parsed.from_address and parsed.from_address == parsed.from_address.strip()
    assert parsed.subject == parsed.subject.strip() and len(parsed.subject) <= 998
    assert not any(ord(char) < 32 for char in parsed.subject)
    assert "\x00" not in parsed.text_body and "\r" not in parsed.text_body
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert len(parsed.headers) <= 200 and all(len(value) <= 2000 for _, value in parsed.headers)
    for attachment in parsed.attachments:
        assert attachment.filename and "/" not in attachment.filename and len(attachment.filename) <= 255
        assert attachment.content_type == attachment.content_type.lower() and ";" not in attachment.content_type
        assert "<" not in attachment.content_id
    assert all(defect.strip() for defect in parsed.defects)


@pytest.mark.security
def test_only_the_files_that_are_not_mail_and_the_message_without_a_sender_are_refused():
    corpus_file("MANIFEST.md")
    refused = {}
    for path in PUBLIC.rglob("*"):
        if path.is_file():
            try:
                parse_message(path.read_bytes())
            except Unparseable as exc:
                refused[str(path.relative_to(PUBLIC))] = str(exc)
    assert set(refused) == NOT_MAIL | NO_SENDER
    assert "does not begin with mail headers" in refused["MANIFEST.md"]
    assert refused["mikel-mail/bad_encoded_subject.eml"] == NO_FROM


# --- Filenames and attachments (corpus) -----------------------------------------------------


def test_it_decodes_rfc2231_filenames():
    parsed = parse_corpus("django-mailbox/message_with_utf8_attachment.eml")

    assert [a.filename for a in parsed.attachments] == ["piłkochwyty.jpg", "odpowiedź Burmistrza.jpg"]
    assert [a.content_type for a in parsed.attachments] == ["image/jpeg", "image/jpeg"]
    assert parsed.attachments[0].content == b"REDACTED\n"


def test_it_decodes_rfc2231_filenames_in_a_latin_charset():
    parsed = parse_corpus("mikel-mail/attachment_with_quoted_filename.eml")

    assert [a.filename for a in parsed.attachments] == ["Eelanalüüsi päring.jpg"]
    assert parsed.attachments[0].content.startswith(b"\xff\xd8")  # a JPEG, base64 decoded
    assert parsed.subject == "Eelanalüüsi päring"


def test_it_joins_rfc2231_continuations():
    parsed = parse_corpus("mikel-mail/japanese_attachment_long_name.eml")

    assert [a.filename for a in parsed.attachments] == ["かきくけこ" * 5 + ".txt"]
    assert parsed.subject == "まみむめも" * 10


def test_it_reads_raw_utf8_filenames():
    parsed = parse_corpus("mikel-mail/attachment_nonascii_filename.eml")

    assert [(a.filename, a.content_type) for a in parsed.attachments] == [("ciële.txt", "text/plain")]
    assert parsed.text_body.strip() == "This is the first part."


def test_it_decodes_encoded_words_inside_quoted_filenames():
    parsed = parse_corpus("mail-parser/mail_test_11")

    (attachment,) = parsed.attachments
    assert attachment.filename.startswith("Prokuratura Rejonowa Warszawa-Śródmieście północ sygn. 2Ds. 137414")
    assert attachment.filename.endswith("udziału w postepowaniu.pdf")
    assert attachment.content.startswith(b"PK\x03\x04")  # a ZIP named .pdf (it is spam): the bytes as sent


def test_a_filename_in_the_wrong_charset_still_gives_a_name_and_a_defect():
    parsed = parse_corpus("mikel-mail/attachment_with_encoded_name.eml")

    (attachment,) = parsed.attachments
    assert attachment.filename.startswith("01 Quien Te Dij") and attachment.filename.endswith("at. Pitbull.mp3")
    assert any("iso-2022-jp" in defect for defect in parsed.defects)


def test_it_keeps_a_forwarded_message_as_an_attachment_and_not_as_the_body():
    parsed = parse_corpus("django-mailbox/message_with_rfc822_attachment.eml")

    (forwarded,) = parsed.attachments
    assert (forwarded.filename, forwarded.content_type) == ("Attached email.eml", "message/rfc822")
    assert message_from_bytes(forwarded.content)["Subject"] == "Attached email"
    assert b"This is the attached email." in forwarded.content
    assert parsed.text_body.startswith("Dear Sir or Madam")
    assert "attached email." not in parsed.text_body


def test_a_forwarded_message_keeps_its_own_attachments_inside_it():
    parsed = parse_corpus("mikel-mail/attachment_message_rfc822.eml")

    assert [(a.filename, a.content_type) for a in parsed.attachments] == [("ForwardedMessage.eml", "message/rfc822")]
    assert b'filename="broken.pdf"' in parsed.attachments[0].content
    assert parsed.text_body.strip() == "This is the first part."


def test_it_reads_a_delivery_report():
    parsed = parse_corpus("sisimai-set-of-emails/lhost-postfix-01.eml")

    assert (parsed.content_type, parsed.report_type) == ("multipart/report", "delivery-status")
    report = next(a for a in parsed.attachments if a.content_type == "message/delivery-status")
    assert report.filename == "delivery-status.txt"
    assert b"Final-Recipient: rfc822; r@p351355.pool.example.ne.jp\r\n" in report.content
    assert parsed.text_body.startswith("This is the mail system at host p351355.pool.example.ne.jp.")


def test_it_decodes_uuencoded_attachments_by_their_names():
    parsed = parse_corpus("mikel-mail/content_transfer_encoding_x_uuencode.eml")

    assert [(a.filename, a.content_type, a.content) for a in parsed.attachments] == [
        ("PGP_Cmts_on_12-14-01_Pkg.doc", "application/msword", b"")
    ]


def test_it_decodes_uuencoded_content_and_takes_the_name_from_the_begin_line():
    raw = _mail(
        "From: dana@customer.example",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nNotes attached.\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
            # The second line carries junk after its data, as some encoders write it.
            "begin 644 notes.txt\r\n,:&5L;&\\@=V]R;&0*\r\n,:&5L;&\\@=V]R;&0*junk!\r\n`\r\nend\r\n--b--\r\n"
        ),
    )

    parsed = parse_message(raw)

    assert [(a.filename, a.content) for a in parsed.attachments] == [("notes.txt", b"hello world\n" * 2)]


def test_pictures_of_an_html_body_are_inline_attachments_with_their_content_ids():
    parsed = parse_corpus("django-mailbox/message_with_image_jpg_mimetype.eml")

    assert [(a.filename, a.content_type, a.content_id, a.inline) for a in parsed.attachments] == [
        ("attachment.jpg", "image/jpg", "OEOYKEJENLIK.2.jpg", True),
        ("attachment.jpg", "image/jpg", "RMXPLRIHWRQK.3.jpg", True),
        ("attachment.gif", "image/gif", "OSSFDHZYGOQM.transparent.gif", True),
    ]
    assert parsed.text_body.strip() == "Hello, World"
    assert "cid:OEOYKEJENLIK.2.jpg" in parsed.html_body


# --- Charsets (corpus) ----------------------------------------------------------------------


def test_it_decodes_shift_jis():
    parsed = parse_corpus("mikel-mail/japanese_shift_jis.eml")

    assert parsed.text_body.splitlines()[0] == "あいうえお"
    assert "このメールはテスト用のメールです。" in parsed.text_body
    assert parsed.defects == []


def test_it_decodes_iso_2022_jp_and_korean():
    assert parse_corpus("mikel-mail/japanese_iso_2022.eml").text_body.strip() == "すみません。"
    assert parse_corpus("mikel-mail/ks_c_5601-1987.eml").text_body.strip() == "스티해"


def test_a_body_declared_ascii_but_in_windows_1251_is_still_readable():
    parsed = parse_corpus("django-mailbox/message_with_invalid_content_for_declared_encoding.eml")

    assert parsed.text_body.strip() == "Это сообщение имеет неправильную кодировка."
    assert parsed.defects == ["The text/plain part is not valid us-ascii; it was read as windows-1251."]


def test_a_body_with_an_unknown_charset_is_still_readable():
    parsed = parse_corpus("mikel-mail/raw_email10.eml")

    assert "Envoyé par le service de messagerie texte de Bell Mobilité." in parsed.text_body
    assert parsed.defects == ["The text/plain part names the unknown charset 'X-UNKNOWN'; it was read as utf-8."]
    assert parse_corpus("django-mailbox/message_with_invalid_encoding.eml").text_body.startswith("We offer loans")


def test_a_raw_8bit_subject_without_a_charset_is_read_as_cyrillic():
    parsed = parse_corpus("django-mailbox/message_with_single_byte_extended_subject_encoding.eml")

    assert parsed.subject == "Узнай как зарабатывать от 1000$ в неделю!"
    assert "The Subject header has 8-bit text without a charset; it was read as windows-1251." in parsed.defects


def test_it_decodes_encoded_words_in_subjects_and_names():
    assert parse_corpus("django-helpdesk/utf-nondecodable.eml").subject == "Fwd: Cyklozaměstnavatel - změna vyhodnocení"
    assert parse_corpus("sisimai-set-of-emails/rfc3834-06.eml").subject == "AutoRespons :Nyaan?"
    parsed = parse_corpus("mail-parser/mail_test_18")
    assert (parsed.from_name, parsed.from_address) == ("LastßlName, FirstName", "comma.name@example.com")
    assert parsed.to == ["tony.stark@example.com"]
    assert parsed.cc == ["simple@example.net", "john.doe@example.com"]


def test_it_reads_raw_utf8_headers():
    parsed = parse_corpus("mikel-mail/utf8_headers.eml")

    assert (parsed.from_name, parsed.from_address) == ("Jöhn Doe", "jdöe@mächine.example")
    assert parsed.subject == "Säying Hello"
    assert parsed.to == ["märy@exämple.net"]


# --- Structure and headers (corpus) ---------------------------------------------------------


def test_html_only_mail_gets_readable_text():
    parsed = parse_corpus("flanker/long-links.eml")

    assert parsed.html_body.lstrip().lower().startswith("<html")
    assert parsed.text_body.startswith("http://www.longurlmaker.com/view/?id=")
    assert "<" not in parsed.text_body


def test_a_multipart_whose_parts_use_another_boundary_is_still_read():
    parsed = parse_corpus("mail-parser/mail_malformed_3")

    assert parsed.text_body.startswith("Problemas para visualizar | Ver on-line (http://calorsolar.tk/")
    assert "A multipart section uses another boundary than it declares; the one in use was taken." in parsed.defects


def test_it_survives_missing_boundaries_and_false_multiparts():
    assert parse_corpus("flanker/missing-final-boundary.eml").text_body.strip() == "Some body"
    false = parse_corpus("flanker/false-multipart.eml")
    assert (false.subject, false.text_body.strip(), false.attachments) == ("Broken MIME", "", [])
    illegal = parse_corpus("mikel-mail/raw_email_with_illegal_boundary.eml")
    assert illegal.text_body.startswith("Hello") and "outlook test" in illegal.text_body


def test_it_reads_obsolete_header_syntax():
    parsed = parse_corpus("mikel-mail/example13.eml")

    assert (parsed.from_name, parsed.from_address) == ("John Doe", "jdoe@machine.example")
    assert parsed.to == ["mary@example.net"]
    assert parsed.subject == "Saying Hello"
    assert parsed.date == datetime(1997, 11, 21, 9, 55, 6, tzinfo=timezone(timedelta(hours=-6)))
    assert parsed.message_id == "<1234@local.machine.example>"


def test_a_stray_line_among_the_headers_does_not_end_them():
    parsed = parse_corpus("mikel-mail/raw_email_incorrect_header.eml")

    assert parsed.subject == "Stop adware/spyware once and for all."
    assert parsed.from_address == "xxx@xxx.xxx"
    assert parsed.text_body.startswith("You are infected with:")
    assert any("'quite Delivered-To: xxx@xxx.xxx'" in defect for defect in parsed.defects)


def test_a_missing_blank_line_before_the_body_is_survived():
    parsed = parse_corpus("cpython/msg_35.txt")

    assert parsed.subject == "here's something interesting"
    assert parsed.text_body.strip() == "counter to RFC 5322, there's no separating newline here"


def test_it_reads_cr_only_mail_and_mbox_separator_lines():
    amazon = parse_corpus("sisimai-set-of-emails/lhost-amazonworkmail-01.eml")
    assert amazon.subject == "Delivery Status Notification (Failure)"
    assert amazon.from_address == "MAILER-DAEMON@us-west-2.amazonses.com"
    assert [a.filename for a in amazon.attachments] == ["Nyaaaaan.eml", "winmail.dat"]
    torture = parse_corpus("flanker/torture-part.eml")
    assert (torture.from_name, torture.from_address) == ("Mark Crispin", "mrc@cac.washington.edu")


def test_it_reads_messages_starting_with_a_blank_line():
    parsed = parse_corpus("flanker/enclosed-broken.eml")

    assert (parsed.from_address, parsed.subject, parsed.text_body.strip()) == ("bob@example.net", "Wow", "Hello")
    assert [a.filename for a in parsed.attachments] == ["thanks.eml"]


def test_it_reads_odd_address_lists():
    assert parse_corpus("mikel-mail/weird_to_header.eml").to == ["user-example@aol.com", "e-s-a-s-2200@app.ar.com"]
    assert parse_corpus("mikel-mail/new_line_in_to_header.eml").to == [
        "leads@sg.dc.com",
        "sag@leads.gs.ry.com",
        "sn@example-hotmail.com",
        "e-s-a-g-8718@app.ar.com",
        "jp@t-exmaple.com",
        "cc@c-l-example.com",
    ]


def test_unreadable_dates_are_none_with_a_defect():
    parsed = parse_corpus("mikel-mail/raw_email_with_bad_date.eml")

    assert parsed.date is None
    assert "The Date header is not a date that can be read: 'Pn, 29 paX 2007 21:13:00 +0100'." in parsed.defects
    assert parse_corpus("cpython/msg_47.txt").date == datetime(2001, 1, 1, 0, 1, tzinfo=UTC)


@pytest.mark.security
def test_a_huge_subject_is_cut():
    parsed = parse_corpus("flanker/long-header.eml")

    assert len(parsed.subject) == 998 and parsed.subject.startswith("Die heiße Zypernsonne quälte Max und Victoria")
    assert "The subject was longer than 998 characters and was cut." in parsed.defects


# --- Crafted messages ---------------------------------------------------------------------


@pytest.mark.security
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "The message is empty."),
        (b"\r\n \r\n", "The message is empty."),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "does not begin with mail headers"),
        (bytes(range(256)) * 8, "does not begin with mail headers"),
        (b"Hello there, this is a letter\r\nnot an email\r\n", "does not begin with mail headers"),
        (_mail("Subject: hi", "To: bob@acme.example"), NO_FROM),
        (_mail("From: Undisclosed", "Subject: hi"), "has no From address"),
    ],
    ids=["empty", "blank", "png", "binary", "prose", "no-from", "unusable-from"],
)
def test_it_refuses_what_is_not_mail_with_a_reason(raw, reason):
    with pytest.raises(Unparseable, match=reason):
        parse_message(raw)


def test_it_falls_back_to_the_sender_header():
    parsed = parse_message(_mail("From: nobody", "Sender: Dana <dana@Customer.Example>"))

    assert (parsed.from_name, parsed.from_address) == ("Dana", "dana@customer.example")
    assert "The From header holds an address that is not usable: 'nobody'." in parsed.defects


@pytest.mark.security
def test_an_unexpected_error_inside_the_parser_becomes_unparseable(monkeypatch):
    def broken(*args):
        raise KeyError("boom")

    monkeypatch.setattr(parsing, "_decoded_headers", broken)

    with pytest.raises(Unparseable, match=r"^Parsing failed: 'boom'$"):
        parse_message(_mail("From: dana@customer.example"))


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_it_reads_every_line_ending(ending):
    raw = _mail(
        "From: Dana <dana@customer.example>",
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=",
        "Content-Type: text/plain; charset=utf-8",
        body="Line one\r\nLine two\r\n",
        ending=ending,
    )
    parsed = parse_message(raw)

    assert (parsed.from_address, parsed.subject) == ("dana@customer.example", "Grüße")
    assert parsed.text_body == "Line one\nLine two\n"


def test_it_reads_mixed_line_endings():
    raw = b"From: dana@customer.example\r\nSubject: mixed\nTo: bob@acme.example\r\r\nBody\rmore\n"

    parsed = parse_message(raw)

    assert (parsed.subject, parsed.to, parsed.text_body) == ("mixed", ["bob@acme.example"], "Body\nmore\n")


def test_a_wrong_charset_declaration_falls_back_with_a_defect():
    raw = _mail("From: dana@customer.example", "Content-Type: text/plain; charset=utf-8").replace(
        b"Hello.", "Café crème, s'il vous plaît".encode("cp1252")
    )

    parsed = parse_message(raw)

    assert parsed.text_body.startswith("Café crème, s'il vous plaît")
    assert "The text/plain part is not valid utf-8; it was read as windows-1252." in parsed.defects


def test_utf8_wins_over_a_wrong_latin1_label():
    raw = _mail("From: dana@customer.example", "Content-Type: text/plain; charset=iso-8859-1", body="Grüße")

    parsed = parse_message(raw)

    assert parsed.text_body == "Grüße"
    assert "The text/plain part says it is iso-8859-1 but is UTF-8; it was read as UTF-8." in parsed.defects


def test_it_decodes_broken_encoded_words():
    raw = _mail(
        "From: =?x-unknown?q?Dana_M=C3=BCller?= <dana@customer.example>",
        # A UTF-8 character split over two words, bad padding, a word glued to text, a word with a language.
        "Subject: Re:=?utf-8?B?w6Q=?= =?utf-8?B?w7w?=x =?utf-8*de?q?=C3=B6?= =?NONE?B?VEVTVA=?=",
    )

    parsed = parse_message(raw)

    assert parsed.from_name == "Dana Müller"
    assert parsed.subject == "Re:äüx öTEST"


@pytest.mark.security
def test_it_sanitizes_filenames():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\dana\\invoice.pdf") == "invoice.pdf"
    assert safe_filename("report\x00\x07\n.pdf") == "report.pdf"
    assert safe_filename("photo\u202egpj.exe") == "photogpj.exe"  # no right-to-left trick
    assert safe_filename("..", "application/pdf") == "attachment.pdf"
    assert safe_filename("", "image/png") == "attachment.png"
    long_name = safe_filename("a" * 300 + ".pdf")
    assert len(long_name) == 255 and long_name.endswith(".pdf")
    japanese = safe_filename("か" * 200 + ".txt")
    assert len(japanese.encode()) <= 255 and japanese.endswith(".txt")


@pytest.mark.security
def test_an_attachment_named_with_a_path_keeps_only_its_name():
    raw = _mail(
        "From: dana@customer.example",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            "--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="../../etc/passwd"\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n'
        ),
    )

    parsed = parse_message(raw)

    assert [(a.filename, a.content_type, a.content) for a in parsed.attachments] == [
        ("passwd", "application/pdf", b"%PDF-1.4\n")
    ]


def test_it_walks_nested_multiparts():
    forwarded = "From: eve@example.org\r\nSubject: Invoice 5/2024\r\n\r\nThe forwarded body.\r\n"
    raw = _mail(
        "From: dana@customer.example",
        'Content-Type: multipart/mixed; boundary="outer"',
        body=(
            '--outer\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
            "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe text.\r\n"
            '--alt\r\nContent-Type: multipart/related; boundary="rel"\r\n\r\n'
            '--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>The <img src="cid:logo@x">HTML.</p>\r\n'
            "--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            "iVBORw0KGgo=\r\n--rel--\r\n--alt--\r\n"
            "--outer\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf\r\n\r\nJVBERi0x\r\n"
            f"--outer\r\nContent-Type: message/rfc822\r\n\r\n{forwarded}"
            "--outer\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
            "--outer--\r\n"
        ),
    )

    parsed = parse_message(raw)

    assert parsed.text_body == "The text."  # the line break before a boundary belongs to the boundary
    assert parsed.html_body.startswith('<p>The <img src="cid:logo@x">HTML.</p>')
    assert [(a.filename, a.content_type, a.content_id, a.inline) for a in parsed.attachments] == [
        ("attachment.png", "image/png", "logo@x", True),
        ("Rechnung März.pdf", "application/pdf", "", False),
        ("Invoice 5-2024.eml", "message/rfc822", "", False),
        ("attachment.ics", "text/calendar", "", False),
    ]
    assert parsed.attachments[0].content == b"\x89PNG\r\n\x1a\n"
    assert b"The forwarded body." in parsed.attachments[2].content


def test_it_joins_inline_text_parts_a_mailer_split():
    raw = _mail(
        "From: dana@customer.example",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nBefore the picture.\r\n"
            "--b\r\nContent-Type: image/gif\r\nContent-Disposition: inline\r\n\r\nGIF89a\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nAfter the picture.\r\n--b--\r\n"
        ),
    )

    parsed = parse_message(raw)

    assert parsed.text_body == "Before the picture.\n\nAfter the picture."
    assert [(a.filename, a.inline) for a in parsed.attachments] == [("attachment.gif", True)]


def test_html_only_crafted_mail_gets_text_from_its_html():
    raw = _mail(
        "From: dana@customer.example",
        "Content-Type: text/html; charset=utf-8",
        body="<html><head><style>p {}</style></head><body><p>Hi,</p><p>please <a href='https://x.example/r'>"
        "pay here</a>.</p></body></html>",
    )

    parsed = parse_message(raw)

    assert parsed.text_body == "Hi,\n\nplease pay here (https://x.example/r)."
    assert parsed.html_body.startswith("<html>")


def test_it_keeps_usable_addresses_and_records_the_others():
    raw = _mail(
        "From: dana@customer.example",
        'To: "Bob, Sales" <Bob@ACME.Example>, not an address, <also bad>, undisclosed-recipients:;',
        "Cc: carol@acme.example (Carol), carol@ACME.example",
        "Reply-To: Support <support@customer.example>",
    )

    parsed = parse_message(raw)

    assert parsed.to == ["Bob@acme.example"]
    assert parsed.cc == ["carol@acme.example"]
    assert parsed.reply_to == ["support@customer.example"]
    assert "The To header holds an address that is not usable: 'notanaddress'." in parsed.defects
    assert "The To header holds an address that is not usable: 'alsobad'." in parsed.defects


def test_it_reads_message_ids_and_references():
    long_id = "<" + "x" * 1200 + "@customer.example>"
    raw = _mail(
        "From: dana@customer.example",
        "Message-ID:   <abc @ customer.example>  ",
        "In-Reply-To: <first@acme.example> (Bob's message of Monday)",
        "References: <first@acme.example> garbage, <second@acme.example>\r\n\t<third@acme.example> <>",
        f"X-Long-Id: {long_id}",
    )

    parsed = parse_message(raw)

    assert parsed.message_id == "<abc@customer.example>"
    assert parsed.in_reply_to == "<first@acme.example>"
    assert parsed.references == ["<first@acme.example>", "<second@acme.example>", "<third@acme.example>"]
    too_long = parse_message(_mail("From: dana@customer.example", f"Message-ID: {long_id}"))
    assert len(too_long.message_id) == 998 and too_long.message_id.endswith(">")
    assert any("Message-ID" in defect and "998" in defect for defect in too_long.defects)


def test_a_date_without_a_zone_is_utc():
    parsed = parse_message(_mail("From: dana@customer.example", "Date: Fri, 21 Nov 1997 09:55:06 -0000"))

    assert parsed.date == datetime(1997, 11, 21, 9, 55, 6, tzinfo=UTC)


@pytest.mark.security
def test_headers_are_decoded_unfolded_and_capped():
    raw = _mail(
        "From: dana@customer.example",
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n  from\r\n\tDana",
        "X-Long: " + "y" * 3000,
        *[f"X-Filler-{n}: {n}" for n in range(250)],
    )

    parsed = parse_message(raw)

    assert parsed.headers[1] == ("Subject", "Grüße  from Dana")
    assert parsed.subject == "Grüße  from Dana"
    assert parsed.headers[2] == ("X-Long", "y" * 2000)
    assert len(parsed.headers) == 200
    assert "The message has 253 headers; only the first 200 were kept." in parsed.defects
    assert "1 header value(s) were longer than 2000 characters and were cut." in parsed.defects


@pytest.mark.security
def test_deeply_nested_multiparts_do_not_lose_the_message():
    depth = 3000
    body = "".join(f"--b{n}\r\nContent-Type: multipart/mixed; boundary=b{n + 1}\r\n\r\n" for n in range(depth))
    raw = _mail("From: dana@customer.example", "Subject: deep", "Content-Type: multipart/mixed; boundary=b0", body=body)

    parsed = parse_message(raw)

    assert (parsed.from_address, parsed.subject) == ("dana@customer.example", "deep")
    assert "The MIME structure is nested too deeply to read; the body was kept as plain text." in parsed.defects


@pytest.mark.security
def test_damaged_corpus_messages_never_raise_anything_but_unparseable():
    corpus_file("MANIFEST.md")
    messages = [path.read_bytes() for path in sorted(PUBLIC.rglob("*")) if path.is_file()]
    chaos = random.Random(20240501)  # fixed, so a failure can be replayed
    for _ in range(300):
        data = bytearray(chaos.choice(messages))
        for _ in range(chaos.randint(1, 10)):
            position = chaos.randrange(len(data) or 1)
            data[position:position] = chaos.choice(DELIMITERS)
        try:
            parse_message(bytes(data))
        except Unparseable as exc:
            assert not str(exc).startswith("Parsing failed"), bytes(data[:200])


# --- HTML to text -------------------------------------------------------------------------


def test_html_to_text_keeps_paragraphs_lists_and_links():
    html = (
        "<html><head><title>Ignored</title><style>p {color: red}</style></head><body>"
        "<h1>Order&nbsp;#5</h1><p>Hello &amp; welcome,<br>second line</p>"
        "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>"
        "<p><a href='https://shop.example/o/5'>Your order</a>, <a href='https://shop.example/'>shop.example</a>, "
        "<a href='mailto:help@shop.example'>help@shop.example</a></p><script>alert(1)</script>"
        "<table><tr><td>Total</td><td>5 €</td></tr></table></body></html>"
    )

    assert html_to_text(html) == (
        "Order #5\n\nHello & welcome,\nsecond line\n\n- one\n- two\n  - nested\n\n"
        "Your order (https://shop.example/o/5), shop.example, help@shop.example\n\nTotal 5 €"
    )


def test_html_to_text_survives_broken_html():
    assert html_to_text("<head><title>x</title><body>an unclosed head") == "an unclosed head"
    assert html_to_text("<p>broken <b>bold <i>italic</p> after") == "broken bold italic\n\nafter"
    assert html_to_text("a<br><br><br><br><br><br>b") == "a\n\n\nb"  # at most two blank lines
    assert html_to_text("<![if !supportLists]>x<![endif]> <!-- note --> &#x41; &bogus; <") == "x A &bogus; <"
    assert html_to_text("") == ""
