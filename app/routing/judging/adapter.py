"""DSPy's ChatAdapter with the work that does not change between calls done once.

Profiling a 1,000-table route showed about 15 ms of CPU per LM call, most of it in the
adapter: the system message (a JSON schema of the output type) rebuilt on every call,
pydantic ``TypeAdapter`` objects built per value to format plain strings, and a lenient
parser tried first on every reply. The prompt and the parsed result are the same as
ChatAdapter's (a test holds them equal); only the avoidable per-call work is gone.

``messages`` is ``format`` without what a fan-out of a hundred calls pays a hundred times for
nothing: DSPy's callback wrapper (the judge runs no callbacks; ``LMJudge._direct`` already
skips Predict's), and the signature's fields looked up again on every call (``input_fields``
and ``output_fields`` build a new dict per access).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dspy
import pydantic
from dspy import AdapterParseError, History

from app.llm.cache_hints import with_cache_breakpoint
from app.llm.dspy_internals import expand_legacy_type_markers

_HEADER = re.compile(r"^\[\[ ## (\w+) ## \]\]\s*$", re.MULTILINE)
_COMPLETED = "[[ ## completed ## ]]"
# The output fields of the signature laid out for prompt caching (SelectTables): its question,
# the last input, comes after everything else, the output requirements included.
QUESTION_LAST_OUTPUTS = ("relevant",)


@dataclass(frozen=True, slots=True)
class _Fields:
    """What formatting and parsing need of a signature, read once."""

    inputs: tuple[str, ...]
    plain_inputs: frozenset[str]  # the str-annotated input fields, formatted as they are
    outputs: tuple[str, ...]
    history: bool  # a History input field: DSPy's own format handles conversation turns


class JudgeAdapter(dspy.ChatAdapter):
    """ChatAdapter that caches per-signature text and validates JSON replies in one step."""

    def __init__(self, *, cache_breakpoint: bool = False) -> None:
        # A reply that does not parse is retried by the judge, not re-asked in JSON mode.
        super().__init__(use_json_adapter_fallback=False)
        # Anthropic caches a prompt only up to a marked part: mark the end of the cards.
        self.cache_breakpoint = cache_breakpoint
        self._system: dict[Any, str] = {}
        self._requirements: dict[Any, str | None] = {}
        self._validators: dict[Any, pydantic.TypeAdapter[Any]] = {}
        self._fields: dict[Any, _Fields] = {}

    def fields_of(self, signature: Any) -> _Fields:
        """The signature's field names, cached (signatures are classes, replaced, never changed)."""
        cached = self._fields.get(signature)
        if cached is None:
            inputs = signature.input_fields
            cached = self._fields[signature] = _Fields(
                inputs=tuple(inputs),
                plain_inputs=frozenset(k for k, f in inputs.items() if f.annotation is str),
                outputs=tuple(signature.output_fields),
                history=any(f.annotation == History for f in inputs.values()),
            )
        return cached

    def messages(self, signature: Any, demos: list[Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """``format``'s messages: the cached system message, the demos, the user message."""
        if self.fields_of(signature).history:
            formatted: list[dict[str, Any]] = self.format(signature, demos, inputs)
            return formatted
        messages = [{"role": "system", "content": self.format_system_message(signature)}]
        if demos:
            messages.extend(self.format_demos(signature, demos))
        content = self.format_user_message_content(signature, inputs, main_request=True)
        if content:
            messages.append({"role": "user", "content": content})
        expanded = [expand_legacy_type_markers(m) for m in messages]
        return with_cache_breakpoint(expanded) if self.cache_breakpoint else expanded

    def format(self, signature: Any, demos: list[Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """ChatAdapter's messages (DSPy's own call path), with the cache breakpoint when asked for."""
        messages: list[dict[str, Any]] = super().format(signature, demos, inputs)
        return with_cache_breakpoint(messages) if self.cache_breakpoint else messages

    def format_system_message(self, signature: Any) -> str:
        cached = self._system.get(signature)
        if cached is None:
            cached = self._system[signature] = super().format_system_message(signature)
        return cached

    def user_message_output_requirements(self, signature: Any) -> str | None:
        if signature not in self._requirements:
            self._requirements[signature] = super().user_message_output_requirements(signature)
        return self._requirements[signature]

    def format_user_message_content(
        self,
        signature: Any,
        inputs: dict[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        known = self.fields_of(signature)
        fields = [k for k in known.inputs if k in inputs]
        if not all(isinstance(inputs[k], str) and k in known.plain_inputs for k in fields):
            text: str = super().format_user_message_content(signature, inputs, prefix, suffix, main_request)
            return text
        # A str field's value is its own formatted form in ChatAdapter; skip the pydantic round trip.
        parts = [prefix, *(f"[[ ## {k} ## ]]\n{inputs[k]}" for k in fields)]
        if main_request:
            requirements = self.user_message_output_requirements(signature)
            if requirements is not None and known.outputs == QUESTION_LAST_OUTPUTS and len(parts) > 2:
                # The reply's format belongs to the prefix every question shares (the provider caches
                # it); only the question, the last field, differs between calls over a chunk.
                parts.insert(len(parts) - 1, requirements)
            elif requirements is not None:
                parts.append(requirements)
        parts.append(suffix)
        return "\n\n".join(parts).strip()

    def _validator(self, signature: Any, name: str) -> pydantic.TypeAdapter[Any]:
        key = (signature, name)
        if key not in self._validators:
            self._validators[key] = pydantic.TypeAdapter(signature.output_fields[name].annotation)
        return self._validators[key]

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        """Strict JSON per output field first; ChatAdapter's lenient parser when that fails."""
        marks = list(_HEADER.finditer(completion))
        sections: dict[str, str] = {}
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(completion)
            sections.setdefault(mark.group(1), completion[mark.end() : end].strip())
        try:
            return {
                name: self._validator(signature, name).validate_json(sections[name])
                for name in self.fields_of(signature).outputs
            }
        except (KeyError, pydantic.ValidationError):
            if _COMPLETED not in completion:
                # Cut short (max_tokens, a dropped stream): the lenient parser would repair the
                # JSON into a shorter list, and every table after the cut would read as a "no".
                raise AdapterParseError(
                    adapter_name="JudgeAdapter",
                    signature=signature,
                    lm_response=completion,
                    message="the reply ends before its completed marker (truncated)",
                ) from None
            try:
                parsed: dict[str, Any] = super().parse(signature, completion)
            except AdapterParseError:
                raise
            except Exception as exc:  # the lenient parser's own failures count as unparseable
                raise AdapterParseError(
                    adapter_name="JudgeAdapter", signature=signature, lm_response=completion, message=str(exc)
                ) from exc
            return parsed
