"""The per-language phrase lists (assets/rules/*.yaml): every language the seeds can sample
has goodbye, assistant-speak and meta-commentary coverage, and an ordinary in-character
sentence in that language passes every rule."""

from __future__ import annotations

import pytest

from rp_pipeline.core.languages import LANGUAGES
from rp_pipeline.core.rules import RuleSet, check_character_reply
from rp_pipeline.core.seeds import load_seed_variables
from rp_pipeline.settings import REPO_ROOT

RULES = RuleSet.load(REPO_ROOT / "assets" / "rules")
E = "<emotion>neutral</emotion>"

# language: (goodbye reply, assistant-speak reply, ordinary in-character reply)
LANG_CASES = {
    "zh": ("好困，晚安啦", "作为一个AI，我不吃蛋糕", "今天店里来了只橘猫，你猜它干嘛了？"),
    "en": ("Good night!", "As an AI, I don't really eat cake", "The cat knocked over my latte again, ugh"),
    "es": (
        "Bueno, me tengo que ir, ¡hasta mañana!",
        "Como una IA, no tengo gustos propios",
        "Hoy el gato del vecino se coló en la tienda",
    ),
    "ja": ("おやすみなさい", "AIとして、私には好みがありません", "今日はお店に猫が迷い込んできたんだよ"),
    "ko": ("이제 잘 자, 내일 봐", "저는 AI 어시스턴트라서 잘 몰라요", "오늘 가게에 고양이가 들어왔어, 진짜 귀여웠어"),
    "fr": (
        "Bon, je dois y aller, bonne nuit !",
        "En tant qu'IA, je n'ai pas de goûts",
        "Le chat du voisin est encore entré ici",
    ),
    "de": (
        "Ich muss los, gute Nacht!",
        "Als KI habe ich keine Vorlieben",
        "Heute ist die Katze wieder in den Laden gekommen",
    ),
    "pt": (
        "Tenho que ir, até amanhã!",
        "Como uma IA, eu não tenho gostos",
        "Hoje o gato do vizinho entrou na loja de novo",
    ),
    "ru": ("Мне пора, спокойной ночи!", "Как ИИ, я не могу есть торт", "Сегодня соседский кот опять забрёл в магазин"),
    "ar": ("تصبح على خير يا صديقي", "بصفتي ذكاء اصطناعي لا أملك ذوقا", "اليوم دخلت قطة الجيران إلى المحل مرة أخرى"),
    "it": (
        "Devo andare, buonanotte!",
        "Come IA, non ho gusti personali",
        "Oggi il gatto del vicino è entrato in negozio",
    ),
    "id": (
        "Aku harus pergi, sampai jumpa besok!",
        "Sebagai AI, saya tidak punya selera",
        "Hari ini kucing tetangga masuk ke toko lagi",
    ),
    "vi": (
        "Tạm biệt nhé, hẹn gặp lại!",
        "Là một AI, tôi không có sở thích riêng",
        "Hôm nay con mèo nhà hàng xóm lại chạy vào quán",
    ),
    "th": ("ราตรีสวัสดิ์นะ ฝันดี", "ในฐานะ AI ฉันไม่มีความชอบส่วนตัว", "วันนี้แมวข้างบ้านเดินเข้ามาในร้านอีกแล้ว"),
    "tr": (
        "Gitmem lazım, iyi geceler!",
        "Bir yapay zeka olarak zevklerim yok",
        "Bugün komşunun kedisi yine dükkâna girdi",
    ),
    "hi": ("अब मुझे जाना है, शुभ रात्रि", "एक एआई के रूप में मेरी कोई पसंद नहीं", "आज पड़ोसी की बिल्ली फिर से दुकान में आ गई"),
}


def codes(text: str, lang: str) -> set[str]:
    return {v.code for v in check_character_reply(text + E, lang, RULES)}


def test_every_seed_language_has_lists_and_a_test_case():
    seeded = {w.code for w in load_seed_variables(REPO_ROOT / "assets" / "seeds").languages}
    assert seeded <= set(LANG_CASES) == set(LANGUAGES)
    for kind in ("goodbye", "assistant_speak", "meta_commentary"):
        assert seeded <= set(getattr(RULES, kind)), kind


@pytest.mark.parametrize("lang", sorted(LANG_CASES))
def test_goodbye_and_assistant_speak_fire_and_ordinary_speech_passes(lang):
    goodbye, assistant, ordinary = LANG_CASES[lang]
    assert "goodbye" in codes(goodbye, lang)
    assert "assistant_speak" in codes(assistant, lang)
    assert codes(ordinary, lang) == set()


@pytest.mark.parametrize(
    "lang, text",
    [
        ("zh", "晚安"),
        ("zh", "好啦，明天见"),
        ("zh", "不聊了，我走了"),
        ("zh", "拜~"),
        ("zh", "好的，拜！"),
        ("ja", "おやすみ"),
        ("ja", "じゃあね"),
        ("ja", "またね！"),
        ("ja", "さようなら"),
        ("en", "Good night!"),
        ("en", "Bye!"),
        ("en", "See you tomorrow"),
        ("en", "I have to go"),
        ("en", "Have a good night"),
        # leaving and "see you next time" as families, in every seed language
        ("zh", "那我先走了，下周见"),
        ("en", "I'd better get going, see you next week"),
        ("es", "Buenas noches, cariño"),
        ("es", "Bueno, ya me voy"),
        ("ja", "じゃ、また来週！"),
        ("ko", "다음 주에 봐요"),
        ("fr", "Allez, à la semaine prochaine"),
        ("de", "Bis nächste Woche!"),
        ("pt", "Até a próxima, querida"),
        ("ru", "До следующей недели!"),
        ("it", "Alla prossima, cara"),
        ("id", "Sampai minggu depan ya"),
        ("vi", "Thôi mình đi đây"),
        ("th", "แล้วพบกันใหม่นะ"),
        ("tr", "Kendine iyi bak"),
        ("ar", "ليلة سعيدة"),
        ("hi", "अब मैं चलता हूँ"),
    ],
)
def test_seed_goodbyes_fire(lang, text):
    assert "goodbye" in codes(text, lang)


@pytest.mark.parametrize(
    "lang, text",
    [
        ("zh", "拜托你帮我带杯咖啡"),
        ("zh", "我超崇拜那个咖啡师的"),
        ("zh", "下午要去拜访一个老客户"),
        ("zh", "上个礼拜我去爬山了"),
        ("zh", "昨天我走了好久才到家"),
        ("zh", "我明天见到他一定问问"),
        ("ja", "明日はおやすみの日だよ"),
        ("en", "It was a good night out with the girls"),
        ("en", "I have to go to work early tomorrow, sadly"),
        ("en", "My grandma's goodbyes last an hour"),
        # 晚 ending one word before a word starting with 安 is no 晚安
        ("zh", "昨晚安静得有点吓人"),
        ("zh", "今晚安排得满满的"),
        # saying goodbye TO someone or something is narration
        ("en", "We said goodbye to our old car last week"),
        ("en", "She waves bye-bye to every ferry"),
        ("es", "Le dije adiós al azúcar hace un año"),
        ("fr", "J'ai dit au revoir à mon vieux vélo"),
        ("pt", "Eu disse adeus ao meu carro velho"),
        ("es", "¡Qué buenas noches aquellas en Sevilla!"),
        ("zh", "我们跟老房子说了再见"),
    ],
)
def test_words_that_contain_a_goodbye_do_not_fire(lang, text):
    assert "goodbye" not in codes(text, lang)
