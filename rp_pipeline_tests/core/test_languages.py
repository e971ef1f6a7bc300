"""The language table: the scripts each language is written in."""

from rp_pipeline.core.languages import letters_outside


def test_letters_outside_a_language_are_those_of_every_script_it_is_not_written_in():
    chinese, japanese, english = (set(letters_outside(code)) for code in ("zh", "ja", "en"))
    latin, han, hiragana, hangul = (0x41, 0x5A), (0x4E00, 0x9FFF), (0x3040, 0x309F), (0xAC00, 0xD7AF)
    assert {latin, hiragana, hangul} <= chinese and han not in chinese
    assert {latin, hangul} <= japanese and not {han, hiragana} & japanese
    assert {han, hiragana, hangul} <= english and latin not in english
    assert all(low <= high for low, high in chinese | japanese | english)
