"""The audit trail: append-only entries, secrets masked before they are stored, and who is named."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction

from actions.audit import MASK, mask_secrets, record_audit
from actions.models import Action, AuditEntry
from actions.models.audit import AuditEntryIsAppendOnly

pytestmark = pytest.mark.security


@pytest.fixture
def entry(db):
    return record_audit("test.happened", actor="tester", details={"n": 1})


def _unchanged(entry: AuditEntry) -> bool:
    stored = AuditEntry.objects.get(pk=entry.pk)
    return (stored.event, stored.actor_label, stored.details) == ("test.happened", "tester", {"n": 1})


# --- Append-only -----------------------------------------------------------


def test_it_refuses_a_queryset_update(entry):
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(event="test.forged")

    assert _unchanged(entry)


def test_it_refuses_a_queryset_delete(entry):
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.all().delete()

    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_it_refuses_a_bulk_update(entry):
    entry.event = "test.forged"

    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.bulk_update([entry], ["event"])

    assert _unchanged(entry)


def test_it_refuses_saving_an_existing_entry(entry):
    entry.details = {"n": 2}

    with pytest.raises(AuditEntryIsAppendOnly):
        entry.save()

    assert _unchanged(entry)


def test_it_refuses_saving_an_entry_loaded_from_the_database(entry):
    loaded = AuditEntry.objects.get(pk=entry.pk)
    loaded.actor_label = "someone else"

    with pytest.raises(AuditEntryIsAppendOnly):
        loaded.save(update_fields=["actor_label"])

    assert _unchanged(entry)


def test_it_refuses_deleting_an_entry(entry):
    with pytest.raises(AuditEntryIsAppendOnly):
        entry.delete()

    assert _unchanged(entry)


def test_it_refuses_update_or_create_on_an_existing_entry(entry):
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.update_or_create(pk=entry.pk, defaults={"event": "test.forged"})

    assert _unchanged(entry)


def test_a_new_entry_cannot_overwrite_an_old_one_by_reusing_its_id(entry):
    forged = AuditEntry(pk=entry.pk, event="test.forged", actor_label="tester", created_at=entry.created_at)

    # Saving an unsaved instance with a known id would otherwise be an UPDATE.
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()

    assert _unchanged(entry)


def test_a_bulk_create_cannot_overwrite_old_entries(entry):
    forged = AuditEntry(pk=entry.pk, event="test.forged", actor_label="tester")

    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.bulk_create([forged], update_conflicts=True, unique_fields=["id"], update_fields=["event"])

    assert _unchanged(entry)


def test_new_entries_can_still_be_created_one_at_a_time_and_in_bulk(entry):
    AuditEntry.objects.create(event="test.created", actor_label="tester")
    AuditEntry.objects.bulk_create([AuditEntry(event="test.bulk", actor_label="tester") for _ in range(3)])

    assert AuditEntry.objects.count() == 5
    assert _unchanged(entry)


def test_the_trail_outlives_the_user_who_acted(db):
    dora = get_user_model().objects.create_user("dora")
    written = record_audit("test.happened", acting_user=dora)

    dora.delete()

    stored = AuditEntry.objects.get(pk=written.pk)
    assert (stored.actor, stored.actor_label) == (None, "dora")


def test_the_trail_outlives_the_object_it_is_about(make_action):
    action = make_action()
    Action.objects.filter(pk=action.pk).delete()

    stored = AuditEntry.objects.get(event="action.proposed")
    assert (stored.target_id, stored.target_repr) == (str(action.pk), str(action))


# --- Masking secrets -------------------------------------------------------

SECRET_KEYS = [
    "password",
    "PASSWORD",
    "db_password",
    "passwd",
    "api_key",
    "apiKey",
    "X-Api-Key",
    "token",
    "access_token",
    "refreshToken",
    "secret",
    "client_secret",
    "Authorization",
    "auth",
    "Cookie",
    "Set-Cookie",
    "credentials",
    "private_key",
    "signature",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_it_masks_a_secret_key_at_any_depth(key):
    details = {key: "s3cr3t-value", "smtp": {key: "s3cr3t-value", "servers": [{"host": "mx", key: "s3cr3t-value"}]}}

    masked = mask_secrets(details)

    assert masked == {key: MASK, "smtp": {key: MASK, "servers": [{"host": "mx", key: MASK}]}}


@pytest.mark.parametrize("value", [12345, None, ["a", "b"], {"nested": "dict"}, ("t", "u")])
def test_it_masks_whatever_value_a_secret_key_holds(value):
    assert mask_secrets({"token": value}) == {"token": MASK}


def test_it_masks_authorization_headers_kept_as_pairs():
    headers = [["Authorization", "Bearer eyJhbGciOi.payload.sig"], ["Subject", "Hello"]]

    assert mask_secrets({"headers": headers}) == {"headers": [["Authorization", MASK], ["Subject", "Hello"]]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer xyz", MASK),
        ("bearer abc.def.ghi", MASK),
        ("Authorization: Bearer eyJhbGciOi.payload", f"Authorization: {MASK}"),
        ("Basic dXNlcjpwYXNzd29yZA==", MASK),
        ("sk-abcdefgh12345678", MASK),
        ("the key was sk-proj_AbC-123456789 yesterday", f"the key was {MASK} yesterday"),
        ("first Bearer aaa then sk-bbbbbbbbbb", f"first {MASK} then {MASK}"),
    ],
)
def test_it_masks_secret_looking_values_under_innocent_keys(text, expected):
    assert mask_secrets({"note": text}) == {"note": expected}
    assert mask_secrets([text]) == [expected]
    assert mask_secrets(text) == expected


ORDINARY = {
    "subject": "Invoice 42 for March",
    "to": ["customer@example.com", "billing@example.com"],
    "from": "queued",
    "reason": "approval timed out",
    "count": 3,
    "amount": 12.5,
    "urgent": False,
    "due": None,
    "task": "task-1234567890",
    "file": "risk-assessment-2024.pdf",
    "keys": ["sk-short", "sk-"],
    "note": "The key is in the drawer; ask the bearer.",
    "params": {"title": "Call back", "assignee": "bob", "labels": ["billing"]},
    7: "numbers as keys",
}


def test_it_keeps_ordinary_values_as_they_are():
    assert mask_secrets(ORDINARY) == ORDINARY


def test_it_returns_a_copy_and_leaves_the_original_alone():
    details = {"password": "hunter2", "nested": {"token": "t0k3n"}, "list": ["Bearer xyz"]}
    original = copy.deepcopy(details)

    masked = mask_secrets(details)

    assert details == original
    assert masked is not details
    assert masked["nested"] is not details["nested"]


def test_it_stores_lists_for_tuples_so_the_value_survives_json():
    assert mask_secrets({"pair": ("a", "Bearer b")}) == {"pair": ["a", MASK]}


# --- record_audit ----------------------------------------------------------


def test_it_stores_the_details_masked(db):
    written = record_audit(
        "integration.configured",
        actor="system",
        details={
            "backend": "smtp",
            "options": {"host": "mail.example.com", "password": "hunter2"},
            "headers": {"Authorization": "Bearer abc123"},
            "log": "called with sk-live1234567890",
        },
    )

    stored = AuditEntry.objects.get(pk=written.pk)
    assert stored.details == {
        "backend": "smtp",
        "options": {"host": "mail.example.com", "password": MASK},
        "headers": {"Authorization": MASK},
        "log": f"called with {MASK}",
    }
    for secret in ("hunter2", "abc123", "sk-live1234567890"):
        assert secret not in str(stored.details)


def test_it_names_the_user_who_acted(alice):
    written = record_audit("test.happened", acting_user=alice)

    stored = AuditEntry.objects.get(pk=written.pk)
    assert (stored.actor, stored.actor_label, str(stored)) == (alice, "alice", "test.happened by alice")


def test_a_named_actor_working_for_a_user_keeps_both(bob):
    written = record_audit("test.happened", acting_user=bob, actor="api")

    stored = AuditEntry.objects.get(pk=written.pk)
    assert (stored.actor, stored.actor_label) == (bob, "api")


def test_it_names_an_anonymous_visitor_as_such(db):
    written = record_audit("test.happened", acting_user=AnonymousUser())

    stored = AuditEntry.objects.get(pk=written.pk)
    assert (stored.actor, stored.actor_label) == (None, "anonymous")


def test_it_names_the_system_when_nobody_acted(db):
    written = record_audit("test.happened")

    stored = AuditEntry.objects.get(pk=written.pk)
    assert (stored.actor, stored.actor_label, stored.details) == (None, "system", {})


def test_it_names_a_non_human_actor(db):
    written = record_audit("test.happened", actor="worker")

    assert AuditEntry.objects.get(pk=written.pk).actor_label == "worker"


def test_it_points_at_its_target_so_the_objects_trail_finds_it(make_action, charlie):
    action = make_action()
    other = make_action()

    written = record_audit("test.happened", target=action, acting_user=charlie)

    stored = AuditEntry.objects.get(pk=written.pk)
    assert stored.target_type == ContentType.objects.get_for_model(Action)
    assert (stored.target_id, stored.target_repr) == (str(action.pk), str(action))
    assert list(AuditEntry.objects.for_object(action).filter(event="test.happened")) == [stored]
    assert not AuditEntry.objects.for_object(other).filter(event="test.happened").exists()


def test_an_entry_without_a_target_has_blank_target_fields(db):
    written = record_audit("system.started")

    stored = AuditEntry.objects.get(pk=written.pk)
    assert (stored.target_type, stored.target_id, stored.target_repr) == (None, "", "")


def test_a_long_target_name_is_cut_to_fit(make_email):
    email = make_email(subject="Re: " + "very long subject " * 30)

    written = record_audit("email.received", target=email)

    stored = AuditEntry.objects.get(pk=written.pk)
    assert stored.target_repr == str(email)[:200]
    assert len(stored.target_repr) == 200


def test_newest_entries_come_first(db):
    first = record_audit("test.first")
    second = record_audit("test.second")

    assert list(AuditEntry.objects.all()[:2]) == [second, first]


@pytest.mark.parametrize(
    "key", ["tokens_used", "prompt_tokens", "author", "bypass", "session_count", "key", "passenger"]
)
def test_it_keeps_keys_that_only_contain_a_secret_word(key):
    assert mask_secrets({key: "kept"}) == {key: "kept"}


@pytest.mark.parametrize("text", ["a basic question", "Basic training", "the bearer of good news", "ask-me anything"])
def test_it_keeps_prose_that_only_resembles_a_credential(text):
    assert mask_secrets({"note": text}) == {"note": text}
