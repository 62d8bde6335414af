"""The shape of a model's answer: a JSON schema built from the handlers' parameter schemas, and its reading.

One pydantic model per action type ({type, params, confidence, rationale},
with the handler's own params class) serves both directions: its JSON
schema is what the model is asked to follow, and it validates what the
model said. Actions are read one by one, so one bad action is dropped with
a note while the rest of the answer stands; the pipeline checks each
proposal again anyway.
"""

from __future__ import annotations

import inspect
import json
from functools import cache
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from actions.handlers import all_handlers, field_errors
from integrations.llm.base import CATEGORIES, PRIORITIES, Analysis, AnalysisError, ProposedAction


class _Answer(BaseModel):
    """How the model describes one email: what it is, how urgent, and what to do about it."""

    model_config = ConfigDict(extra="forbid")

    category: Literal[CATEGORIES]
    priority: Literal[tuple(PRIORITIES)]
    summary: str = Field(description="Two or three sentences for the team: who wants what, by when.")
    draft_reply: str = Field("", description="A reply to the sender, in the email's language; '' when none is needed.")
    # Read one by one (see module docstring); the schema below narrows this to the action models.
    actions: list[dict[str, Any]]


def action_description(action_type: str) -> str:
    """What an action type does, in one line: the first line of its handler's docstring."""
    doc = inspect.getdoc(type(all_handlers()[action_type])) or action_type
    return doc.splitlines()[0]


@cache
def action_models() -> dict[str, type[BaseModel]]:
    """One pydantic model per action type: its `type` constant, the handler's params, a confidence and a rationale."""
    models: dict[str, type[BaseModel]] = {}
    for action_type, handler in sorted(all_handlers().items()):
        name = str(action_type)
        models[name] = create_model(
            "".join(part.title() for part in name.split("_")) + "Action",
            __config__=ConfigDict(extra="forbid"),
            __doc__=action_description(name),
            type=(Literal[name], ...),
            params=(handler.params, ...),
            confidence=(float, Field(0.5, ge=0, le=1, description="How sure you are this action is wanted, 0 to 1.")),
            rationale=(str, Field("", description="Why, in one sentence a reviewer can check against the email.")),
        )
    return models


@cache
def _answer_model() -> type[BaseModel]:
    # A plain Union gives anyOf, which structured outputs accept (oneOf they do not); each branch's
    # `type` const still makes it a discriminated union.
    action = Union[tuple(action_models().values())]  # noqa: UP007 (a runtime tuple of types)
    return create_model(
        "EmailAnalysis",
        __base__=_Answer,
        __doc__=_Answer.__doc__,
        actions=(list[action], Field(description="What to do about the email; [] when nothing.")),
    )


def analysis_json_schema() -> dict[str, Any]:
    """The JSON schema of the model's answer (a fresh dict), its actions an anyOf of every action type's model."""
    return _answer_model().model_json_schema()


def parse_answer(text: str) -> Analysis:
    """Read the model's answer into an Analysis; AnalysisError (transient) when it is not the JSON asked for.

    Actions of an unknown type or with invalid parameters are dropped, each
    with a note in Analysis.notes; the rest of the answer is kept.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AnalysisError(f"The model's answer is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise AnalysisError(f"The model's answer is JSON but not an object: {text[:100]!r}.")
    try:
        answer = _Answer.model_validate(data)
    except ValidationError as exc:
        raise AnalysisError(f"The model's answer does not have the expected shape: {_problems(exc)}.") from None
    analysis = Analysis(
        category=answer.category,
        priority=PRIORITIES[answer.priority],
        summary=answer.summary,
        draft_reply=answer.draft_reply,
    )
    for item in answer.actions:
        proposed = _proposed_action(item)
        if isinstance(proposed, ProposedAction):
            analysis.actions.append(proposed)
        else:
            analysis.notes.append(proposed)
    return analysis


def _proposed_action(item: dict[str, Any]) -> ProposedAction | str:
    """The action the model proposed, or a note saying why it was dropped."""
    action_type = item.get("type")
    model = action_models().get(action_type) if isinstance(action_type, str) else None
    if model is None:
        return f"Dropped a proposed action of unknown type {action_type!r}."
    try:
        checked = model.model_validate(item)
    except ValidationError as exc:
        return f"Dropped the proposed {action_type}: {_problems(exc)}."
    # The parameters as the model wrote them: the proposal validates (and normalises) them itself.
    return ProposedAction(
        type=action_type, params=item["params"], confidence=checked.confidence, rationale=checked.rationale
    )


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{where}: {why}" for where, why in field_errors(exc))
