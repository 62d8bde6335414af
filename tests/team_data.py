"""A hand-made team of twelve, shared by the assignment and hierarchy tests."""

from __future__ import annotations


def member(name, role, manager, skills, tz, hours, capacity=10, **extra) -> dict:
    email = f"{name.split()[0].lower()}@acme.example"
    return {
        "name": name,
        "email": email,
        "role": role,
        "manager": manager and f"{manager}@acme.example",
        "skills": skills,
        "timezone": tz,
        "working_hours": hours,
        "availability": "available",
        "capacity": capacity,
        **extra,
    }


TEAM = [
    member("Dana Whitfield", "director", None, {"leadership": 5, "finance": 4}, "America/New_York", "09:00-17:00", 3),
    member("Marco Rossi", "manager", "dana", {"operations": 5, "billing": 4}, "Europe/Rome", "08:30-17:30", 8),
    member("Aiko Tanaka", "lead", "marco", {"infrastructure": 5, "incident-response": 5}, "Asia/Tokyo", "10:00-19:00"),
    member("Priya Natarajan", "lead", "marco", {"reporting": 5, "finance": 4}, "Asia/Kolkata", "09:30-18:30"),
    member("Liam OBrien", "agent", "aiko", {"billing": 4, "customer-support": 5}, "Europe/Dublin", "09:00-17:00", 12),
    member(
        "Sofia Garcia",
        "agent",
        "aiko",
        {"customer-support": 4, "spanish": 5},
        "Europe/Madrid",
        "09:00-18:00",
        availability="busy",
    ),
    member(
        "Noah Fischer",
        "agent",
        "aiko",
        {"infrastructure": 3, "incident-response": 4},
        "Europe/Berlin",
        "07:00-15:00",
        8,
        availability="away",
        away_until="2026-12-01",
    ),
    member("Ethan Brooks", "agent", "priya", {"scheduling": 5}, "America/Los_Angeles", "08:00-16:00", 12),
    member("Olivia Hart", "agent", "priya", {"billing": 2, "customer-support": 4}, "Europe/London", "09:00-17:00"),
    member("Kofi Mensah", "agent", "priya", {"billing": 5}, "Africa/Accra", "09:00-17:00", 2),
    member("Mei Lin", "agent", "aiko", {"incident-response": 3}, "Australia/Sydney", "22:00-06:00"),
    member("Lucas Souza", "agent", "priya", {"billing": 5}, "America/Sao_Paulo", "09:00-17:00", active=False),
]
