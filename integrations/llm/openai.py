"""The openai backend: one Chat Completions call with structured output per email, via the openai SDK.

Works against OpenAI or any server speaking its API (OPENAI_BASE_URL). The
SDK retries transient failures itself (OPENAI_MAX_RETRIES, with backoff);
what still fails becomes an AnalysisError whose `permanent` says whether
the pipeline should try again later.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
from django.conf import settings
from openai.types.chat import ChatCompletion

from integrations.http import retry_after
from integrations.llm.base import Analysis, AnalysisBackend, AnalysisError, EmailFacts
from integrations.llm.prompt import messages
from integrations.llm.schema import analysis_json_schema, parse_answer

# The SDK refuses an empty key; a compatible server at OPENAI_BASE_URL may need none.
_NO_KEY = "unused"
_MILLION = Decimal(1_000_000)


class OpenAIBackend(AnalysisBackend):
    """Analyses email with a chat model through the openai SDK."""

    name = "openai"

    def __init__(self) -> None:
        self.model = settings.OPENAI_MODEL
        self.api_key = settings.OPENAI_API_KEY
        self.base_url = settings.OPENAI_BASE_URL
        self.timeout = settings.OPENAI_TIMEOUT_SECONDS
        self.max_body_chars = settings.ANALYSIS_MAX_BODY_CHARS
        self.input_price = Decimal(settings.OPENAI_INPUT_PRICE_PER_MTOK or 0)
        self.output_price = Decimal(settings.OPENAI_OUTPUT_PRICE_PER_MTOK or 0)
        # One client (and connection pool) for the batch; it is safe to share between threads.
        self.client = openai.OpenAI(
            api_key=self.api_key or _NO_KEY,
            base_url=self.base_url or None,
            timeout=self.timeout,
            max_retries=settings.OPENAI_MAX_RETRIES,
        )
        self.response_format = {
            "type": "json_schema",
            "json_schema": {"name": "email_analysis", "schema": analysis_json_schema(), "strict": False},
        }

    def health(self) -> str:
        """'' when configured; otherwise what is missing. No network call."""
        if not self.model:
            return "OPENAI_MODEL is not set: name the model to analyse email with."
        if not self.api_key and not self.base_url:
            return "OPENAI_API_KEY is not set (or OPENAI_BASE_URL, for a compatible server that needs no key)."
        return ""

    def analyze(self, facts: EmailFacts) -> Analysis:
        """Ask the model about one email and read its structured answer. Raises AnalysisError when it cannot."""
        problem = self.health()
        if problem:
            raise AnalysisError(problem, permanent=True)
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=messages(facts, self.max_body_chars),
                response_format=self.response_format,
                temperature=0,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        analysis = parse_answer(self._content(completion))
        analysis.backend = self.name
        analysis.model = completion.model or self.model
        if completion.usage is not None:
            # `or 0`: compatible servers do not all count both.
            analysis.input_tokens = completion.usage.prompt_tokens or 0
            analysis.output_tokens = completion.usage.completion_tokens or 0
        analysis.cost = (
            analysis.input_tokens * self.input_price + analysis.output_tokens * self.output_price
        ) / _MILLION
        return analysis

    def _content(self, completion: Any) -> str:
        """The text of the completion's answer; AnalysisError (transient) when it holds none to read."""
        # The SDK does not check answers strictly: a compatible server's odd reply arrives as it is.
        if not isinstance(completion, ChatCompletion) or not completion.choices:
            raise AnalysisError(
                f"{_capital(self._where())} answered with no chat completion: {str(completion)[:200]!r}."
            )
        choice = completion.choices[0]
        model = completion.model or self.model
        if choice.message is None:
            raise AnalysisError(f"{model} answered with no message.")
        if choice.message.refusal:
            raise AnalysisError(f"{model} refused to analyse the email: {choice.message.refusal}")
        if choice.finish_reason == "length":
            raise AnalysisError(f"{model}'s answer was cut off at its length limit.")
        if choice.finish_reason == "content_filter":
            raise AnalysisError(f"{model}'s answer was withheld by the content filter.")
        content = choice.message.content
        if not isinstance(content, str) or not content.strip():
            raise AnalysisError(f"{model} answered with no content.")
        return content

    def _error(self, exc: openai.OpenAIError) -> AnalysisError:
        """The AnalysisError for an SDK failure: permanent when asking again cannot help."""
        where = self._where()
        if isinstance(exc, openai.APITimeoutError):
            return AnalysisError(f"No answer from {where} within {self.timeout} s.")
        if isinstance(exc, openai.APIConnectionError):
            return AnalysisError(f"The connection to {where} failed: {exc.__cause__ or exc}")
        if not isinstance(exc, openai.APIStatusError):
            return AnalysisError(f"The request to {where} failed: {exc}")
        status = exc.status_code
        message = f"{_capital(where)} answered {status}: {_error_message(exc)}"
        if exc.code == "insufficient_quota":
            # A 429 that waiting does not cure: the account is out of credit until someone pays.
            return AnalysisError(message, permanent=True)
        if status in (408, 409, 429) or status >= 500:
            return AnalysisError(message, retry_after=retry_after(exc.response.headers))
        # 400 (a request we built wrong), 401, 403, 404 (no such model), 422: the same request fails again.
        return AnalysisError(message, permanent=True)

    def _where(self) -> str:
        if not self.base_url:
            return "OpenAI"
        return f"the OpenAI-compatible server at {str(self.client.base_url).rstrip('/')}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _error_message(exc: openai.APIStatusError) -> str:
    # The service's own words, {"error": {"message": ...}}; the SDK's message repeats the whole body.
    body: Any = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message
