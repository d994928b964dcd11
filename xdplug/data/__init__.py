"""Data: raw domains, the table reader, item keys and texts, the prepared cross-domain split."""

#: the item text template a config's ``dataset.text_template`` defaults to (a template the user
#: wrote must name real fields; this one may name fields the data lacks)
DEFAULT_TEXT_TEMPLATE = "{title} ({year}). Genres: {genres}."
