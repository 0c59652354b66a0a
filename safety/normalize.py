"""The one text normalisation every moderation detector reads: undo cheap obfuscation, keep meaning.

Steps, in order (each is a public function, so a detector or a test can apply one alone):

1. `unicodedata` NFKC: full-width and mathematical letters become plain ones (``ｉｇｎｏｒｅ``, ``𝐤𝐢𝐥𝐥``);
2. `strip_invisible`: zero-width and other format characters (category Cf: ZWSP, ZWJ, soft hyphen,
   bidi controls) are removed; Unicode *tag* characters, which smuggle ASCII invisibly, are turned
   back into the ASCII they encode;
3. `fold_homoglyphs`: letters of another script that look like Latin ones (Cyrillic ``а е о р с і``,
   Greek ``ο ν``) become Latin, from Unicode's confusables table as shipped by the
   `confusable-homoglyphs` package; only inside words that mix scripts, or in text that is mostly
   Latin, so Russian or Greek text stays Russian or Greek;
4. `join_spaced_letters`: ``k i l l`` / ``k.i.l.l`` / ``k-i-l-l`` (three or more single characters)
   become ``kill``;
5. `unleet`: digits and symbols standing for letters inside words (``k1ll``, ``h4te``, ``1gn0re``,
   ``@ss``) become letters; numbers, versions, ordinals and units (``2026``, ``3.10.2``, ``1st``,
   ``10am``, ``win11``), long tokens (base64, hex) and e-mail addresses are left alone, so encoded
   payloads can still be decoded afterwards (`safety.moderation.injection`).

Case, punctuation and line breaks are kept. The result is for detectors only: offsets do not map
back to the original, so personal-data redaction and everything shown or stored use the original
text. This module does not lower-case, translate or spell-correct, and it does not detect anything.

Example:
    >>> normalize("Ｉ will k1ll  y\u200bou, іdіot")
    'I will kill  you, idiot'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "fold_homoglyphs",
    "join_spaced_letters",
    "normalize",
    "strip_invisible",
    "unleet",
]

_TAG_BASE = 0xE0000  # U+E0020..U+E007E mirror ASCII 0x20..0x7E


def strip_invisible(text: str) -> str:
    """Remove format characters (Cf); decode Unicode tag characters into the ASCII they mirror."""
    if text.isascii():
        return text
    out = []
    for ch in text:
        cp = ord(ch)
        if 0xE0020 <= cp <= 0xE007E:
            out.append(chr(cp - _TAG_BASE))
        elif unicodedata.category(ch) != "Cf":
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=1)
def _homoglyph_table() -> dict[str, str]:
    """Non-Latin letter -> the ASCII letter it is confusable with (Unicode confusables.txt)."""
    from confusable_homoglyphs import confusables

    table: dict[str, str] = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii() or not char.isalpha():
            continue
        # The script is the first word of the character's name (CYRILLIC SMALL LETTER A); Latin
        # look-alikes that matter (full-width, mathematical) are NFKC's job.
        if unicodedata.name(char, "LATIN").split()[0] in ("LATIN", "MODIFIER", "MATHEMATICAL"):
            continue
        latin = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()]
        if latin:
            # Unicode's skeletons fold I and l together; a capital (Cyrillic І, Greek Ι) means "I".
            same_case = [c for c in latin if c.isupper() == char.isupper()]
            table[char] = "I" if char.isupper() and latin == ["l"] else (same_case or latin)[0]
    return table


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _is_latin(ch: str) -> bool:
    return ch.isascii() or unicodedata.name(ch, "").startswith("LATIN")


def fold_homoglyphs(text: str) -> str:
    """Latin look-alikes from other scripts become Latin where the text or the word is Latin.

    A word that mixes scripts (``іgnore`` with a Cyrillic ``і``) is folded; a word written wholly in
    look-alikes (``оnе``) is folded when most letters of the text are Latin. A text that is mostly
    Cyrillic or Greek is left as it is: it is that language, not an obfuscation of English.
    """
    if text.isascii():
        return text
    table = _homoglyph_table()
    letters = [ch for ch in text if ch.isalpha()]
    mostly_latin = sum(_is_latin(ch) for ch in letters) * 2 > len(letters)

    def fold(match: re.Match[str]) -> str:
        word = match.group()
        if word.isascii() or not any(ch in table for ch in word):
            return word
        mixed = any(_is_latin(ch) for ch in word)
        if mixed or (mostly_latin and all(ch in table or _is_latin(ch) for ch in word)):
            return "".join(table.get(ch, ch) for ch in word)
        return word

    return _WORD.sub(fold, text)


# Three or more single letters/digits, each followed by one separator (space, dot, dash, underscore,
# asterisk): "k i l l", "k.i.l.l", "f-u-c-k". Two spaces end a spaced word ("k i l l  y o u").
_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*]){2,}[^\W_](?![^\W_])")


def join_spaced_letters(text: str) -> str:
    """``k i l l`` -> ``kill``. Runs need at least two letters, so ``1 2 3`` or ``5 5 5`` stay."""

    def join(match: re.Match[str]) -> str:
        run = match.group()
        chars = run[::2]
        if sum(ch.isalpha() for ch in chars) < 2:
            return run
        return chars

    return _SPACED.sub(join, text)


_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "!": "i", "|": "l"}
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$!|]+")
# Tokens that are not leetspeak: numbers with a unit or ordinal suffix (10am, 1st, 128gb), names with
# a version number at the end (win11, python3, utf8, covid19), hex strings, and 'x'-style products.
_NOT_LEET = re.compile(
    r"^(?:\d+(?:st|nd|rd|th|am|pm|[kmgtp]?b|[kmc]?m|k?g|ms|hz|px|pt|[dhkpsxy])|[a-z]{2,}\d+|[a-z]\d{2,}|[0-9a-f]{8,}|0x[0-9a-f]+|\d+x\d+)$",
    re.IGNORECASE,
)
_EMAIL_LIKE = re.compile(r"\S+@\S+\.\w+")
# base64 / URL-safe base64 / hex runs: '+' and '/' would otherwise cut them into word-sized tokens
_ENCODED_LIKE = re.compile(r"[A-Za-z0-9+/=_-]{16,}")
_MAX_LEET_TOKEN = 15  # longer runs are base64 / hashes / ids, never words


def unleet(text: str) -> str:
    """``k1ll`` -> ``kill``, ``h4te`` -> ``hate``, ``$h!t`` -> ``shit``; numbers and ids stay."""
    protected = [m.span() for rx in (_EMAIL_LIKE, _ENCODED_LIKE) for m in rx.finditer(text)]

    def fix(match: re.Match[str]) -> str:
        token = match.group()
        letters = sum(ch.isalpha() for ch in token)
        if not letters or letters == len(token) or len(token) > _MAX_LEET_TOKEN:
            # '!' and '|' alone are punctuation; a bare symbol run is not a word
            return token
        if _NOT_LEET.match(token.strip("!|")):
            return token
        if any(start <= match.start() < end for start, end in protected):
            return token
        # '!' and '|' stand for letters only between two others ("$h!t", "k|ll"); elsewhere they are
        # punctuation ("kill!!") or syntax ("<|im_start|>").
        return "".join(
            _LEET.get(ch, ch)
            if ch not in "!|" or (0 < i < len(token) - 1 and token[i - 1].isalnum() and token[i + 1].isalnum())
            else ch
            for i, ch in enumerate(token)
        )

    return _LEET_TOKEN.sub(fix, text)


def normalize(text: str) -> str:
    """All steps in order: NFKC, invisible characters, homoglyphs, spaced letters, leetspeak."""
    text = unicodedata.normalize("NFKC", text)
    text = strip_invisible(text)
    text = fold_homoglyphs(text)
    text = join_spaced_letters(text)
    return unleet(text)
