"""Item text: the string encoders read, built from a template over item fields."""

from __future__ import annotations

import re
import string
import unicodedata

import pandas as pd

from ..errors import ConfigError

FALLBACK = "item {item}"


def template_fields(template: str) -> list[str]:
    """The placeholder names of ``template``; a ConfigError unless each is a plain ``{name}``."""
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError("dataset.text_template", f"not a valid template: {exc}") from None
    for name, spec, conversion in parsed:
        # "{}", "{0}", "{title.upper}" or "{genres[0]}" would fail (or misbehave) at format time; a
        # format spec ("{title:>30000000}") or conversion ("{title!r}") would pad or quote every text
        if not name.isidentifier() or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError("dataset.text_template", f"placeholder {shown} in {template!r} must be a plain item "
                              "field name like {title} (no format spec or conversion)")
    return [name for name, _, _ in parsed]


def check_template_fields(template: str, tables: list[pd.DataFrame], fields: dict[str, str],
                          default: str | None = None) -> None:
    """A ConfigError when a placeholder names no field of any item table (after the ``fields`` mapping).

    Otherwise its items would silently render without it (``"Title 0."``), or get the fallback
    text. The same for every template, the default one (``default``) included: then the error
    suggests the template without the missing fields. Skipped when no table describes its items
    at all (then there is no text to render; the low coverage is warned about instead).
    """
    columns = {str(c) for table in tables for c in table.columns} - {"item"}
    if not columns:
        return
    known = columns | {name for name, column in fields.items() if column in columns}
    names = template_fields(template)
    unknown = [name for name in names if fields.get(name, name) not in columns]
    if unknown:
        import difflib

        hints = [f"{{{name}}} -> {{{close[0]}}}" for name in unknown
                 for close in [difflib.get_close_matches(name, sorted(known), n=1)] if close]
        fix = ""
        if template == default:  # perhaps written by no one: say how to write one for these data
            kept = tidy(template, drop=unknown)
            fix = "; it is the default dataset.text_template: set your own" + (
                f", e.g. {kept!r}" if template_fields(kept) else "")
        raise ConfigError(
            "dataset.text_template",
            f"unknown item field{'s' if len(unknown) > 1 else ''} {', '.join(f'{{{n}}}' for n in unknown)} in "
            f"{template!r}: no domain's item table has {'them' if len(unknown) > 1 else 'it'} (every item would "
            f"get the fallback text 'item <id>' or render without it); fields that exist: {', '.join(sorted(known))}"
            + (f" (did you mean {'; '.join(hints)}?)" if hints else "") + fix)


def tidy(text: str, drop: list[str] = ()) -> str:
    """``text`` without the placeholders ``drop`` and the decoration they leave ("()", "Genres: .")."""
    for name in drop:
        text = text.replace(f"{{{name}}}", "")
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"\s+([.,;:])", r"\1", text)
    text = re.sub(r"\b[A-Z][a-z]+:\s*\.", "", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def _clean(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() in ("nan", "none", "unknown") else text


def render_texts(items: pd.DataFrame, template: str, fields: dict[str, str]) -> tuple[dict[str, str], int]:
    """Text per item from ``template`` (placeholders map to item columns via ``fields``).

    A placeholder without a value renders empty and its decoration is tidied
    away; an item with no value for any placeholder gets the fallback text
    ``"item <id>"``. Returns ``{item: text}`` and how many items fell back.
    """
    names = template_fields(template)
    texts: dict[str, str] = {}
    fallback = 0
    columns = {name: fields.get(name, name) for name in names}
    records = items.to_dict("records")
    for row in records:
        values = {name: _clean(row.get(col)) if col in row else "" for name, col in columns.items()}
        item = str(row["item"])
        if not any(values.values()):
            texts[item] = FALLBACK.format(item=item)
            fallback += 1
            continue
        try:
            text = template.format(**values)
        except ValueError as exc:  # e.g. a numeric format spec ("{year:d}") on a text value
            raise ConfigError("dataset.text_template", f"cannot render {template!r}: {exc}") from None
        texts[item] = tidy(text)  # remove decoration left by empty fields: "()", "Genres: ." and doubled spaces
    return texts, fallback


_KEY_STRIP = re.compile(r"[^0-9a-z]+")


def normalise_key(value: str) -> str:
    """Normalised matching key: lower case, punctuation and spacing removed.

    Also moves a leading article put last by catalogues ("Matrix, The (1999)") and
    drops accents, so "Amélie" and "Amelie" match instead of losing the letter.
    """
    text = unicodedata.normalize("NFKD", str(value).strip().lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    match = re.match(r"^(.*), (the|a|an)( \(\d{4}\))?$", text)
    if match:
        text = f"{match.group(2)} {match.group(1)}{match.group(3) or ''}"
    return _KEY_STRIP.sub(" ", text).strip()
