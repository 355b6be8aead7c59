"""Merging one evaluation result into a model card's YAML header, touching only its ``model-index`` block.

:func:`updated_card` keeps every other result and metadata field, replaces an earlier result of the same metric on
the same dataset (id, config, split), and rewrites only the ``model-index`` block when the header's layout allows it
(so comments and formatting elsewhere survive, and a pull request shows the one change it makes).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml
from huggingface_hub import EvalResult
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.repocard_data import eval_results_to_model_index
from huggingface_hub.utils import yaml_dump

from .errors import CardFormatError

__all__ = ["updated_card"]

_TOP_LEVEL_KEY = re.compile(r"[^\s#-]")  # a line starting a new top-level YAML key (not indented, not a list item)


def updated_card(card: str | None, result: EvalResult, *, model_name: str) -> str:
    """``card`` (a README's text, or None for a repo without one) with ``result`` merged into its ``model-index``.

    Other results and metadata are kept; an earlier result of the same metric type on the same dataset (id, config,
    split) is replaced. Only the ``model-index`` block of the YAML header is rewritten when the header allows it,
    so formatting and comments elsewhere survive; otherwise the header is re-serialised.

    Parameters
    ----------
    card : str or None
    result : huggingface_hub.EvalResult
    model_name : str
        The ``model-index`` name used when the card has no ``model-index`` yet.

    Raises
    ------
    CardFormatError
        The header is not YAML, not a mapping, or its ``model-index`` is not a list of ``{name, results}``.
    """
    text = card or ""
    entry = eval_results_to_model_index(model_name, [result])[0]
    match = REGEX_YAML_BLOCK.search(text)
    if match is None:  # no metadata yet: a header holding only the model-index, above the card's text as it was
        return f"---\n{_dump({'model-index': [entry]})}---\n{text}"
    try:
        metadata = yaml.safe_load(match.group(2)) or {}
    except yaml.YAMLError as exc:
        raise CardFormatError(f"the card's YAML header does not parse ({exc.__class__.__name__}); "
                              "fix the card first.") from None
    if not isinstance(metadata, dict):
        raise CardFormatError("the card's YAML header is not a mapping of fields; fix the card first.")
    index = _merged_index(metadata.get("model-index"), entry, result)
    line_break = "\r\n" if "\r\n" in match.group(2) else "\n"
    expected = {**metadata, "model-index": index}
    header = _spliced(match.group(2), index, line_break)
    if _parsed(header) != expected:  # the header's layout (flow style, comments in the block) defeated the splice
        header = _dump(expected, line_break).rstrip(line_break)
    return text[:match.start(2)] + header + text[match.end(2):]


def _merged_index(index: Any, entry: dict[str, Any], result: EvalResult) -> list[dict[str, Any]]:
    """``index`` with earlier results of ``result``'s metric on its dataset removed and ``entry``'s result added."""
    if index is None:
        return [entry]
    if not (isinstance(index, list) and index and all(
            isinstance(e, dict) and isinstance(e.get("results", []), list) for e in index)):
        raise CardFormatError("the card's model-index is not a list of {name, results} entries "
                              "(https://github.com/huggingface/hub-docs/blob/main/modelcard.md); fix it first.")
    index = copy.deepcopy(index)
    same = (result.dataset_type, result.dataset_config, result.dataset_split)
    for e in index:
        kept = []
        for r in e.get("results") or []:
            data = r.get("dataset") if isinstance(r, dict) and isinstance(r.get("dataset"), dict) else {}
            if (data.get("type"), data.get("config"), data.get("split")) == same:
                r = {**r, "metrics": [m for m in r.get("metrics") or [] if not (
                    isinstance(m, dict) and m.get("type") == result.metric_type)]}
                if not r["metrics"]:
                    continue
            kept.append(r)
        e["results"] = kept
    index[0]["results"].append(entry["results"][0])
    return index


def _spliced(header: str, index: list[dict[str, Any]], line_break: str) -> str:
    """``header`` (YAML text) with its top-level ``model-index`` block replaced by ``index``, or appended."""
    block = _dump({"model-index": index}, line_break).rstrip(line_break).split(line_break)
    lines = header.split(line_break)
    start = next((i for i, line in enumerate(lines) if re.match(r"model-index\s*:", line)), None)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        return line_break.join(lines + block)
    end = next((j for j in range(start + 1, len(lines)) if _TOP_LEVEL_KEY.match(lines[j])), len(lines))
    while end > start + 1 and not lines[end - 1].strip():  # blank lines before the next key stay where they were
        end -= 1
    return line_break.join(lines[:start] + block + lines[end:])


def _parsed(header: str) -> Any:
    try:
        return yaml.safe_load(header)
    except yaml.YAMLError:
        return None


def _dump(data: dict[str, Any], line_break: str = "\n") -> str:
    """YAML as huggingface_hub writes card metadata (block style, keys in order)."""
    return yaml_dump(data, sort_keys=False, line_break=line_break)
