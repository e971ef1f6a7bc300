from pathlib import Path

import pytest
import yaml

from rp_pipeline.core.personas import PersonaCardError, authored_persona_ids, load_persona_file
from rp_pipeline.core.seeds import coverage, load_seed_variables, sample_seeds
from rp_pipeline.settings import REPO_ROOT

ASSETS = REPO_ROOT / "assets"


def test_seed_tables_are_complete():
    variables = load_seed_variables(ASSETS / "seeds")
    assert len(variables.character_personalities) == 29
    assert len(variables.user_personalities) == 12
    assert len(variables.character_occupations) == 15
    assert len(set(variables.user_occupations)) == 95
    assert len(variables.languages) >= 15
    assert len(variables.emotions) == 8


def test_sampling_is_reproducible_and_covers_tables():
    variables = load_seed_variables(ASSETS / "seeds")
    first, again = sample_seeds(variables, 29, seed=1), sample_seeds(variables, 29, seed=1)
    assert [s.id for s in first] == [s.id for s in again]
    assert [s.id for s in sample_seeds(variables, 29, seed=2)] != [s.id for s in first]
    cov = coverage(variables, first)
    assert cov["character_personalities"] == 1.0 and cov["character_occupations"] == 1.0
    assert cov["user_personalities"] == 1.0


def test_authored_cards_validate_in_three_languages():
    ids = authored_persona_ids(ASSETS / "personas")
    cards = [load_persona_file(ASSETS / "personas" / f"{i}.yaml") for i in ids]
    assert len(cards) >= 6
    assert len({c.language for c in cards}) >= 3


def _card(tmp_path: Path, name: str, **changes) -> Path:
    raw = yaml.safe_load((ASSETS / "personas" / "theo-barnes.yaml").read_text())
    raw.update(id=name, **changes)
    raw = {k: v for k, v in raw.items() if v is not None}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"opening_line": None}, "opening_line"),
        ({"age": "very old"}, "age"),
        ({"language": "xx"}, "language"),
        ({"speaking_examples": []}, "speaking_examples"),
    ],
)
def test_bad_cards_name_file_and_field(tmp_path, changes, field):
    path = _card(tmp_path, "bad", **changes)
    with pytest.raises(PersonaCardError) as err:
        load_persona_file(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_bad_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: Theo\nage: 38\nbackground: a farm: in Yorkshire\n")
    with pytest.raises(PersonaCardError, match=r"broken.yaml, line 3: not valid YAML: mapping values"):
        load_persona_file(path)
