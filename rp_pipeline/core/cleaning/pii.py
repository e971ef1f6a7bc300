"""Personal data in chat turns: phones (CN mobile/landline, NANP, international), emails,
CN resident IDs (18 digits, checksum verified), bank cards (Luhn verified), street
addresses (zh/en) and passwords. Found values are masked, so the turn keeps its shape
("我的电话是••••") and the model never learns a real number.

Checksums keep ordinary numbers (order ids, prices, years) from being masked; a resident ID
with a mistyped check digit still counts when its region and birth date are real.
`benchmarks/pii_quality.py` measures it on a labeled zh/en set.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

MASK = "••••"  # not a debris symbol run, not letters of any language
_PASSWORD_WORDS = "password|passcode|passwd|pwd|密码|口令"
# What every pattern below needs: a digit, an @, or a password word. Most turns hold none, and
# then the ten patterns need not run.
_HINT = re.compile(rf"(?i)[\d@]|{_PASSWORD_WORDS}")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_cn_id(value: str) -> bool:
    """GB 11643: 17 digits, then a check character from the weighted digit sum mod 11."""
    value = value.upper()
    if not re.fullmatch(r"\d{17}[\dX]", value):
        return False
    return _ID_CHECK[sum(int(d) * w for d, w in zip(value, _ID_WEIGHTS, strict=False)) % 11] == value[17]


def looks_like_cn_id(value: str) -> bool:
    """A resident ID, checksum right or mistyped: a province code (11-82), then a birth date
    that exists (1900 to 2099). An order number of 18 digits rarely has both; a person who
    mistypes one digit of their ID has still given it away."""
    value = value.upper()
    if valid_cn_id(value):
        return True
    if not re.fullmatch(r"\d{17}[\dX]", value) or not 11 <= int(value[:2]) <= 82:
        return False
    try:
        born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year <= 2099


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


_PATTERNS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    # ASCII only: Python's \w also matches Chinese, which took "简历发到" into the address
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), None),
    ("cn_id", re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])"), looks_like_cn_id),
    (
        "bank_card",
        re.compile(r"(?<!\d)\d{4}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?(?!\d)"),
        lambda m: 13 <= len(_digits(m)) <= 19 and luhn_ok(_digits(m)),
    ),
    ("cn_mobile", re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"), None),
    ("cn_landline", re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)"), None),
    ("phone", re.compile(r"(?<![\d+])(?:\+?1[-. ]?)?\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}(?!\d)"), None),
    ("intl_phone", re.compile(r"(?<![\d+])\+\d{1,3}[- ]?\d{2,4}[- ]?\d{3,4}[- ]?\d{3,4}(?!\d)"), None),
    (
        "address_zh",
        re.compile(
            r"(?:(?![在住是我你他她的到去来于])[\u4e00-\u9fff]){2,8}(?:省|市|区|县)"
            r"[\u4e00-\u9fff\d]{0,12}?"
            r"[\u4e00-\u9fff\d]{1,10}(?:路|街|道|巷|弄)\d+号(?:\d+(?:栋|幢|楼|单元|室))*"
        ),
        None,
    ),
    (
        "address_en",
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|"
            r"Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl)\b\.?(?:,?\s*(?:Apt|Suite|Unit)\.?\s*\d+)?"
        ),
        None,
    ),
    (
        "password",
        re.compile(
            rf"(?i)(?:{_PASSWORD_WORDS})\s*(?:is|是|为|:|：|=)\s*"
            # inner punctuation belongs to the secret (P@ss.w0rd), a trailing one to the sentence
            r"([^\s，。、<]{2,}[^\s，。,.!?！？、<])"
        ),
        None,
    ),
]


def find_pii(text: str) -> tuple[str, list[tuple[str, str]]]:
    """`text` with personal data masked, and (kind, value) of each find in order of the
    patterns (a password's value is the secret alone, not "密码是")."""
    found: list[tuple[str, str]] = []
    if not _HINT.search(text):
        return text, found
    for kind, pattern, valid in _PATTERNS:

        def mask(match: re.Match[str], kind: str = kind, valid=valid) -> str:
            if valid is not None and not valid(match.group(0)):
                return match.group(0)
            if match.lastindex:  # mask only the secret, keep "密码是"
                found.append((kind, match.group(1)))
                start, end = match.span(1)
                return match.group(0)[: start - match.start()] + MASK + match.group(0)[end - match.start() :]
            found.append((kind, match.group(0)))
            return MASK

        text = pattern.sub(mask, text)
    return text, found


def scrub_pii(text: str) -> tuple[str, list[str]]:
    """`text` with personal data masked, and the kinds found (empty when nothing was)."""
    masked, found = find_pii(text)
    return masked, [kind for kind, _ in found]
