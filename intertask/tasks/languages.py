"""Language lists of the benchmarks, in one table (ISO 639-1 codes, English first).

Sources: XTREME (Hu et al. 2020, arXiv 2003.11080, Table 1 and the xtreme repo's task scripts) and
XTREME-R (Ruder et al. 2021, arXiv 2104.07412).
"""

from __future__ import annotations


def _langs(codes: str) -> tuple[str, ...]:
    items = codes.split()
    return tuple(["en"] + sorted(c for c in items if c != "en")) if "en" in items else tuple(sorted(items))


XNLI = _langs("en ar bg de el es fr hi ru sw th tr ur vi zh")
PAWSX = _langs("en de es fr ja ko zh")
UDPOS = _langs("en af ar bg de el es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo zh")
PANX = _langs(
    "en af ar bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru sw ta te th tl tr ur vi yo zh"
)
XQUAD = _langs("en ar de el es hi ru th tr vi zh")
MLQA = _langs("en ar de es hi vi zh")
TYDIQA = _langs("en ar bn fi id ko ru sw te")
BUCC = _langs("de fr ru zh")
TATOEBA = _langs(
    "af ar bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr nl pt ru sw ta te th tl tr ur vi zh uk"
)
XCOPA = _langs("en et ht id it qu sw ta th tr vi zh")

# LASER's Tatoeba files use ISO 639-3 codes (tatoeba.rus-eng.rus).
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn", "uk": "ukr",
}  # fmt: skip
