"""The project's own docs hold what its code refers to: every ``*.md`` a comment names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: files the code writes (a report), not documents it cites
WRITTEN = {"report.md"}


def cited_documents():
    for folder in ("xdplug", "plugins", "datasets"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in re.findall(r"[A-Za-z0-9_./-]+\.md\b", path.read_text()):
                yield path.relative_to(ROOT), name


def test_every_cited_document_is_in_the_repository():
    cited = list(cited_documents())
    assert any(name == "docs/protocol.md" for _, name in cited)
    missing = [f"{path}: {name}" for path, name in cited
               if Path(name).name not in WRITTEN and not (ROOT / name).is_file() and not (ROOT / "docs" / name).is_file()]
    assert not missing, "the code cites documents the repository does not have: " + "; ".join(missing)


def test_protocol_doc_holds_what_the_code_cites():
    text = (ROOT / "docs" / "protocol.md").read_text()
    for fact in ("## 1. The data", "## 2. The comparison", "min_rating", "min_user_inter", "min_item_inter",
                 "paired per-user", "Holm-Bonferroni", "Wilcoxon", "best baseline"):
        assert fact in text, fact


def test_configuration_doc_says_how_pooling_works():
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text.split("### Pooling")[1].split("\n## ")[0]
    for fact in ("extra item columns", "one row", "one column", "shared item or of a shared user",
                 "source_weight", "leakage guard", "recbole_data(pooled=True)"):
        assert fact in section, fact
