"""Do two questions ask the same thing? The semantic cache's guard against cosine alone.

Sentence embeddings place "Who can request a refund?" and "Who cannot request a
refund?" at cosine 0.96: they are trained to score topic, and one word that flips the
answer barely moves the vector. So before the semantic cache serves one question's
answer for another (llm.answer_cache), the two must agree on everything that
changes an answer, checked here with plain English rules, in this order:

1. negation (not, never, no, cannot, can't, without, except…), then modality:
   permission (can, may) is not obligation (must, should);
2. order and comparison (before/after, first/last, more/less, most/least, min/max…);
3. periods and units (monthly/yearly, days/hours, GB/MB, %, currencies);
4. numbers (digits and number words, "five" = "5", ordinals);
5. named things (capitalised words past the first, acronyms, codes like LDG-409, v2);
6. the question word (who, when, where, what/which, how many, how long, why…);
7. the content words: after light stemming, neither may have a content word the other
   lacks (counted: "steam … to direct steam" is not "steam … to direct engines"). This
   is the catch-all: any change of subject, verb or qualifier is another question,
   whatever the cosine says;
8. word order: the same words in another order ask another question in English, which
   marks roles by position ("from the bunker to the firebox", "discovered by Watt,
   later by Black", "did not argue that … prevented"); embeddings barely see it.

Words are counted, not merely found: "did not argue that it did not prevent" has one
negation more than "argued that it did not prevent".

What may differ is what never changes an answer: greetings and discourse openers
("So, ", "Quick question: "), politeness after the question ("? Thanks"), function
words, hedges ("usually"), case, punctuation, plural and tense endings. The rules err
towards a miss: a wrong hit repeats someone else's answer as fact, a wrong miss only
costs one generation. Nothing is fitted: no weights, no thresholds, and the word lists
are general English, not any data set's vocabulary. (Counting and word order were
added after reading the ten squad2_dev pairs a first version let through; the rules
are general, but squad2_dev's zero wrong hits is partly a figure of the data that
shaped them; benchmarks/semantic_cache.py says so too.)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

Agreement = Literal[
    "agree",
    "negation",
    "modality",
    "comparison",
    "unit",
    "number",
    "entity",
    "question_word",
    "content_words",
    "word_order",
]
AGREE: Final = "agree"
# Every disagreement, in the order it is checked (bounded: metrics labels come from it).
DISAGREEMENTS: Final[tuple[Agreement, ...]] = (
    "negation",
    "modality",
    "comparison",
    "unit",
    "number",
    "entity",
    "question_word",
    "content_words",
    "word_order",
)

# --- word lists (general English) ----------------------------------------------------

# Negation markers, by what they do: "not" flips, "without"/"except" remove, "unless"
# conditions. "never" and "no" are "not" here: they flip the same way.
_NEGATIONS: Final = {
    **dict.fromkeys(
        "not no never none nobody nothing nowhere neither nor noone non cannot".split(), "not"
    ),
    "without": "without",
    "except": "except",
    "excluding": "except",
    "unless": "unless",
}
# Modal verbs by what they ask: whether one may (can, could, may, might) or whether one
# must (must, should, shall, ought). "Who can approve?" lists who is allowed, "Who must
# approve?" who is required. "will"/"would" only mark tense and stay function words.
_MODALS: Final = {
    **dict.fromkeys("can could may might".split(), "can"),
    **dict.fromkeys("must should shall ought".split(), "must"),
}
# Order, comparison and quantity words: each changes which item, time or amount is asked
# for. Kept apart because most of them are function words a stop list would drop.
# Synonymous spellings meet (min = minimum, till = until).
_COMPARISONS: Final = {
    **{w: w for w in (
        "before after prior earlier later earliest latest early late first last next "
        "previous final initial more less most least fewest higher lower highest "
        "lowest greater greatest bigger biggest larger largest smaller smallest older "
        "oldest newer newest younger youngest longer longest shorter shortest better best "
        "worse worst faster fastest slower slowest cheaper cheapest above below over under "
        "beyond until since within than top bottom upper only all every each both either"
    ).split()},
    "min": "minimum", "minimum": "minimum", "max": "maximum", "maximum": "maximum",
    "till": "until", "fewer": "less",
}  # fmt: skip
# Periods and units, to one canonical name each: "annual" and "per year" ask the same,
# "monthly" does not. Singular "second" is an ordinal, not a unit (see _NUMBER_WORDS).
_UNITS: Final = {
    **dict.fromkeys("year years yearly annual annually yr yrs annum".split(), "year"),
    **dict.fromkeys("month months monthly".split(), "month"),
    **dict.fromkeys("week weeks weekly".split(), "week"),
    **dict.fromkeys("day days daily".split(), "day"),
    **dict.fromkeys("hour hours hourly hr hrs".split(), "hour"),
    **dict.fromkeys("minute minutes mins".split(), "minute"),  # "min" is "minimum"
    **dict.fromkeys("seconds sec secs".split(), "second"),
    **dict.fromkeys("quarter quarters quarterly".split(), "quarter"),
    **dict.fromkeys("decade decades".split(), "decade"),
    **dict.fromkeys("century centuries".split(), "century"),
    **dict.fromkeys("kb kilobyte kilobytes".split(), "kb"),
    **dict.fromkeys("mb megabyte megabytes".split(), "mb"),
    **dict.fromkeys("gb gigabyte gigabytes".split(), "gb"),
    **dict.fromkeys("tb terabyte terabytes".split(), "tb"),
    **dict.fromkeys("byte bytes".split(), "byte"),
    **dict.fromkeys("% percent percentage percentages".split(), "percent"),
    **dict.fromkeys("$ usd dollar dollars".split(), "usd"),
    **dict.fromkeys("€ eur euro euros".split(), "eur"),
    **dict.fromkeys("£ gbp pound pounds sterling".split(), "gbp"),
    **dict.fromkeys("¥ jpy yen".split(), "jpy"),
    **dict.fromkeys("cent cents".split(), "cent"),
    **dict.fromkeys("km kilometre kilometres kilometer kilometers".split(), "km"),
    **dict.fromkeys("mile miles mph".split(), "mile"),
    **dict.fromkeys("metre metres meter meters".split(), "metre"),
    **dict.fromkeys("kg kilogram kilograms kilo kilos".split(), "kg"),
    **dict.fromkeys("gram grams".split(), "gram"),
    **dict.fromkeys("ton tons tonne tonnes".split(), "tonne"),
    **dict.fromkeys("lb lbs".split(), "lb"),
    **dict.fromkeys("litre litres liter liters".split(), "litre"),
    **dict.fromkeys("degree degrees celsius fahrenheit".split(), "degree"),
    **dict.fromkeys("kwh mw gw kw watt watts".split(), "power"),
}
# Number words to the digits they mean; ordinals keep a "#" so "second" ≠ "2".
_NUMBER_WORDS: Final = {
    **{w: str(i) for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )},
    **{w: str(10 * i) for i, w in enumerate(
        "thirty forty fifty sixty seventy eighty ninety".split(), start=3
    )},
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "trillion": "1000000000000", "dozen": "12", "half": "0.5", "once": "x1", "twice": "x2",
    "thrice": "x3", "single": "1", "double": "x2", "triple": "x3", "pair": "2",
    **{w: f"#{i}" for i, w in enumerate(
        "second third fourth fifth sixth seventh eighth ninth tenth".split(), start=2
    )},
}  # fmt: skip
# Question words; "which" asks what "what" asks ("which plan" = "what plan"), "whom" is
# "who". "how" takes the word after it when that word names what is measured.
_QUESTION_WORDS: Final = {
    "who": "who", "whom": "who", "whose": "whose", "when": "when", "where": "where",
    "what": "what", "which": "what", "why": "why", "how": "how", "whether": "whether",
}  # fmt: skip
_HOW_WHAT: Final = frozenset(
    "many much long often old far big large small soon fast tall high deep wide heavy "
    "early late come".split()
)
# Function words: articles, pronouns, auxiliaries, the prepositions of place and time
# that wordings trade freely (of, in, on, at), conjunctions. Their presence never
# decides an answer ("How do I…" and "How do we…" ask the same). Prepositions that
# assign roles (from/to, for/against, by, with, about) are content words: "moved from"
# is not "moved to". Words of order, negation, modality and quantity are listed above
# and checked on their own instead.
_STOP_WORDS: Final = frozenset(
    """a an the this that these those there here it its it's i me my mine myself we us
    our ours you your yours he him his she her hers they them their theirs one ones
    am is are was were be been being do does did doing done have has having had
    will would get gets got
    of in on at upon during per as and or but if so then also too very just really
    actually basically even ever
    still usually typically generally normally exactly please kindly currently
    any some such own way anyone anybody someone somebody anything something
    s t d ll ve re m""".split()
)
# Openers and closers that wrap a question without changing it: greetings, discourse
# markers, thanks. Only stripped where they wrap it (a leading clause ending in a comma
# or colon, words after the final question mark), so "the right to" or "a good
# question" inside a question still count.
_DISCOURSE: Final = frozenset(
    """so well hi hello hey ok okay right now sorry please thanks thank you quick question
    good morning afternoon evening there um uh oh yes also btw alright all team folks
    everyone dear and but then excuse me one more small another hiya greetings""".split()
)
_POLITENESS: Final = frozenset(
    "thanks thank you please cheers thx ty much a lot in advance so kindly".split()
)

_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:[-.'][^\W_]+)*|[$€£¥%]", re.UNICODE)
_CONTRACTIONS: Final = (
    (re.compile(r"\bcan'?t\b", re.IGNORECASE), "can not"),
    (re.compile(r"\bwon'?t\b", re.IGNORECASE), "will not"),
    (re.compile(r"\bshan'?t\b", re.IGNORECASE), "shall not"),
    (re.compile(r"n't\b", re.IGNORECASE), " not"),
    (re.compile(r"\bcannot\b", re.IGNORECASE), "can not"),
    (re.compile(r"'(s|re|ve|ll|d|m)\b", re.IGNORECASE), " "),
)
_LEADING_CLAUSE = re.compile(r"^\s*([^,:;?!.]{1,40}?)\s*[,:;!]+\s*")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")


@dataclass(frozen=True)
class QuestionTraits:
    """What of a question can change its answer, each normalised so wordings meet.
    Counted traits are sorted tuples (a multiset that compares with ==)."""

    negations: tuple[str, ...]
    modalities: tuple[str, ...]
    comparisons: tuple[str, ...]
    units: tuple[str, ...]
    numbers: tuple[str, ...]
    entities: frozenset[str]  # case-folded names, acronyms and codes
    question_words: frozenset[str]
    content: tuple[str, ...]  # stems of the remaining words
    sequence: tuple[str, ...]  # every trait but the question words, in question order
    words: frozenset[str]  # every case-folded word, to find another's entities in


def questions_agree(cached: str, new: str) -> Agreement:
    """ "agree", or the first thing on which ``new`` asks something ``cached`` does not."""
    a, b = question_traits(cached), question_traits(new)
    if a.negations != b.negations:
        return "negation"
    if a.modalities != b.modalities:
        return "modality"
    if a.comparisons != b.comparisons:
        return "comparison"
    if a.units != b.units:
        return "unit"
    if a.numbers != b.numbers:
        return "number"
    if not (a.entities <= b.words and b.entities <= a.words):
        return "entity"
    if a.question_words != b.question_words:
        return "question_word"
    if a.content != b.content:
        return "content_words"
    if a.sequence != b.sequence:
        return "word_order"
    return AGREE


@lru_cache(maxsize=4096)
def question_traits(text: str) -> QuestionTraits:
    """The traits of one question (cached: a cache entry is compared again and again)."""
    tokens = _WORD.findall(_question_core(text))
    letters = [c for token in tokens for c in token if c.isalpha()]
    shouting = sum(c.isupper() for c in letters) > len(letters) / 2
    kinds: dict[str, list[str]] = {kind: [] for kind in _KINDS}
    entities: set[str] = set()
    question_words: set[str] = set()
    sequence: list[str] = []
    previous = ""
    for index, token in enumerate(tokens):
        word = token.casefold()
        kind, value = _classify(token, word, previous, first=index == 0, shouting=shouting)
        previous = word
        if kind == "question_word":
            if value.startswith("how "):
                question_words.discard("how")
            question_words.add(value)
            continue
        if kind == "":
            continue
        if kind in ("code", "name"):
            entities.add(word)
            kind = "content"
        kinds[kind].append(value)
        sequence.append(value)
    return QuestionTraits(
        negations=tuple(sorted(kinds["negation"])),
        modalities=tuple(sorted(kinds["modality"])),
        comparisons=tuple(sorted(kinds["comparison"])),
        units=tuple(sorted(kinds["unit"])),
        numbers=tuple(sorted(kinds["number"])),
        entities=frozenset(entities),
        question_words=frozenset(question_words),
        content=tuple(sorted(kinds["content"])),
        sequence=tuple(sequence),
        words=frozenset(token.casefold() for token in tokens),
    )


_KINDS: Final = ("negation", "modality", "comparison", "unit", "number", "content")


def _classify(
    token: str, word: str, previous: str, *, first: bool, shouting: bool
) -> tuple[str, str]:
    """(kind, normalised value) of one token; kind "" for a word that never matters.
    ``shouting``: the question is in capitals, so capitals mark nothing."""
    if word in _UNITS:  # before acronyms: "GB" is a unit
        return "unit", _UNITS[word]
    if _is_code(token):
        return "code", word
    if not shouting and _is_acronym(token):  # before stop words: "US", "IT", "WHO"
        return "name", _stem(word)
    if word in _NEGATIONS:
        return "negation", _NEGATIONS[word]
    if word in _MODALS:
        return "modality", _MODALS[word]
    if word in _QUESTION_WORDS:
        return "question_word", _QUESTION_WORDS[word]
    if previous == "how" and word in _HOW_WHAT:
        return "question_word", f"how {word}"
    if word in _COMPARISONS:
        return "comparison", _COMPARISONS[word]
    if _NUMBER.match(word):
        return "number", word.replace(",", "")
    if word in _NUMBER_WORDS:
        return "number", _NUMBER_WORDS[word]
    if (ordinal := _digit_ordinal(word)) is not None:
        return "number", ordinal
    if word in _STOP_WORDS:
        return "", ""
    if not first and not shouting and _is_name(token):
        return "name", _stem(word)
    return "content", _stem(word)


def _question_core(text: str) -> str:
    """The question without its wrapping: greetings and discourse openers before it,
    thanks after it; contractions spelled out ("can't" → "can not")."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    if "?" in text:
        head, _, tail = text.rpartition("?")
        if all(w.casefold() in _POLITENESS for w in _WORD.findall(tail)):
            text = head
    while (opener := _LEADING_CLAUSE.match(text)) is not None:
        clause = [w.casefold() for w in _WORD.findall(opener.group(1))]
        if not clause or len(clause) > 4 or not all(w in _DISCOURSE for w in clause):
            break
        text = text[opener.end() :]
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _is_code(token: str) -> bool:
    """A product code, version or identifier: letters and digits together (LDG-409, v2,
    2FA, S3). It names one thing; a near miss is another, so it is compared as written."""
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    return has_digit and has_alpha and _digit_ordinal(token.casefold()) is None


def _is_acronym(token: str) -> bool:
    """Two or more capitals and nothing else: SSO, GDPR, EU, U.S."""
    letters = [c for c in token if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def _is_name(token: str) -> bool:
    """Capitalised past the first word: a name (Growth plan, Warsaw, Xero)."""
    return token[:1].isupper() and any(c.islower() for c in token[1:])


def _digit_ordinal(word: str) -> str | None:
    match = re.fullmatch(r"(\d+)(?:st|nd|rd|th)", word)
    return f"#{match.group(1)}" if match else None


def _stem(word: str) -> str:
    """A light stemmer: plural, -ing, -ed and a final e, so "refunds", "refunded" and
    "refunding" meet and "charge"/"charged" too. Deliberately weaker than Porter's:
    merging "general" with "generate" would make different questions agree."""
    word = word.removesuffix("'")
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes", "zes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]  # stopped → stop, planned → plan
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word
