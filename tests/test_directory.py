"""import_team and export_team: the directory in its JSON format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from teams.directory import DirectoryError, export_directory, import_directory
from teams.models import TeamMember

EXAMPLE = Path(__file__).resolve().parent.parent / "teams" / "fixtures" / "demo_team.json"


@pytest.fixture
def directory() -> dict:
    return json.loads(EXAMPLE.read_text())


def _by_email(data: dict) -> list[dict]:
    return sorted(data["members"], key=lambda member: member["email"])


def test_it_imports_the_example_directory(db, directory):
    import_directory(directory)
    assert TeamMember.objects.count() == 8
    marco = TeamMember.objects.get(user__email="marco.rossi@acme.example")
    assert str(marco) == "Marco Rossi"
    assert (marco.role, marco.manager.user.email, marco.timezone) == (
        "manager",
        "dana.whitfield@acme.example",
        "Europe/Rome",
    )
    assert marco.skills == {"operations": 5, "billing": 4, "escalations": 5}
    assert f"{marco.work_start:%H:%M}-{marco.work_end:%H:%M}" == "08:30-17:30"
    assert not marco.user.has_usable_password()


def test_export_gives_back_what_import_takes(db, directory):
    import_directory(directory)
    assert _by_email(export_directory()) == _by_email(directory)


def test_importing_again_updates_instead_of_duplicating(db, directory):
    import_directory(directory)
    directory["members"][3]["capacity"] = 2
    import_directory(directory)
    assert TeamMember.objects.count() == 8
    assert get_user_model().objects.count() == 8
    assert TeamMember.objects.get(user__email=directory["members"][3]["email"]).capacity == 2


def test_a_bad_file_lists_each_problem_and_imports_nothing(db, directory):
    members = directory["members"]
    members[1]["role"] = "emperor"
    members[2]["timezone"] = "Mars/Olympus"
    members[3]["skills"] = {"billing": 9}
    members[4]["working_hours"] = "nine to five"
    members[5]["manager"] = "nobody@acme.example"
    with pytest.raises(DirectoryError) as caught:
        import_directory(directory)
    errors = caught.value.errors
    assert any("marco.rossi@acme.example" in e and "role" in e and "emperor" in e for e in errors)
    assert any("Mars/Olympus" in e for e in errors)
    assert any("'billing' has level 9" in e for e in errors)
    assert any("working_hours" in e and "nine to five" in e for e in errors)
    assert any("nobody@acme.example" in e and "neither in the file nor in the directory" in e for e in errors)
    assert TeamMember.objects.count() == 0
    assert get_user_model().objects.count() == 0


def test_it_refuses_duplicates_and_missing_fields(db, directory):
    directory["members"].append(dict(directory["members"][0]))
    del directory["members"][2]["email"]
    with pytest.raises(DirectoryError) as caught:
        import_directory(directory)
    assert any("listed twice" in e for e in caught.value.errors)
    assert any(e.startswith("member 3 (Aiko Tanaka): email is missing") for e in caught.value.errors)


def test_it_refuses_a_reporting_loop(db, directory):
    import_directory(directory)
    dana = next(m for m in directory["members"] if m["email"] == "dana.whitfield@acme.example")
    dana["manager"] = "liam.obrien@acme.example"  # Liam reports up to Dana.
    with pytest.raises(DirectoryError, match="loop"):
        import_directory(directory)
    assert TeamMember.objects.get(user__email="dana.whitfield@acme.example").manager is None


def test_it_refuses_a_file_that_is_not_a_directory(db):
    with pytest.raises(DirectoryError, match='"members" list'):
        import_directory([1, 2, 3])


def test_the_commands_round_trip_through_a_file(db, tmp_path, capsys):
    call_command("import_team", str(EXAMPLE))
    assert "Imported 8 team members" in capsys.readouterr().out
    out = tmp_path / "team.json"
    call_command("export_team", output=str(out))
    assert _by_email(json.loads(out.read_text())) == _by_email(json.loads(EXAMPLE.read_text()))


def test_the_import_command_explains_bad_input(db, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CommandError, match="is not valid JSON"):
        call_command("import_team", str(broken))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_team", str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"members": [{"name": "X", "email": "x@acme.example", "role": "emperor"}]}))
    with pytest.raises(CommandError, match=r"Nothing was imported:\n  member 1 \(x@acme.example\): role"):
        call_command("import_team", str(bad))


def test_working_days_default_to_monday_to_friday_and_round_trip(db, directory):
    directory["members"][0]["working_days"] = "Sun-Thu"
    import_directory(directory)
    dana = TeamMember.objects.get(user__email="dana.whitfield@acme.example")
    marco = TeamMember.objects.get(user__email="marco.rossi@acme.example")
    assert dana.work_days == [0, 1, 2, 3, 6]
    assert marco.work_days == [0, 1, 2, 3, 4]
    exported = {m["email"]: m for m in export_directory()["members"]}
    assert exported["dana.whitfield@acme.example"]["working_days"] == "Mon-Thu,Sun"
    assert "working_days" not in exported["marco.rossi@acme.example"]
    import_directory(export_directory())
    assert TeamMember.objects.get(pk=dana.pk).work_days == [0, 1, 2, 3, 6]


def test_it_refuses_working_days_it_cannot_read(db, directory):
    directory["members"][0]["working_days"] = "Funday-Friday"
    with pytest.raises(DirectoryError, match="working_days: 'Funday-Friday' is not a list of weekdays"):
        import_directory(directory)
