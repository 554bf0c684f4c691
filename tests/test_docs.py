"""docs/versions.md's feature table says what the profiles say."""

from pathlib import Path

from skbsim.profile import FEATURES, load_profile

DOC = Path(__file__).resolve().parent.parent / "docs" / "versions.md"
RELEASES = ("6.1", "6.9", "6.12", "6.18", "7.1")


def _table_rows():
    rows = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1 : 1 + len(RELEASES)]
    return rows


def test_every_feature_has_a_row_with_each_profiles_value():
    rows = _table_rows()
    profiles = [load_profile(name) for name in RELEASES]
    assert set(rows) == set(FEATURES)
    for feature, cells in rows.items():
        values = [p.features[feature] for p in profiles]
        assert cells == [str(v).lower() if isinstance(v, bool) else v for v in values], feature
