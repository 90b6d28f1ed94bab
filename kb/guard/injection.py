"""Prompt-injection detection: phrase families, the question's embedding, a logistic model.

A question becomes two kinds of features: which families of instruction-override
phrasing it contains (the regexes in ``PATTERNS``, written from the common shapes
of these attacks in English, German and a few other languages — no phrase is taken
from an evaluation file), plus imperative and second-person cues; and its
embedding by the bundled MiniLM (the vector retrieval computes for the question
anyway). One logistic model over both gives a score in [0, 1]; the weights, the
bias and the threshold live in ``injection_model.json`` next to this module.

They are fitted by ``manage.py injection_fit`` on public labelled training sets
only (tests/data/README.md): the regularisation and the threshold are chosen by
cross-validation within those sets, and ``manage.py guard_eval injections``
reports on public sets never used for any choice (a held-out injection set and a
set of benign prompts full of trigger words). The figures are in the JSON's
provenance and in docs/security.md.

No network: the embedder is the bundled MiniLM. If it cannot be loaded the
embedding part is left out (zeros) and the phrase families still decide.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings

from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.queries import query_embedding
from kb.embeddings.texts import texts_embed
from kb.embeddings.usage import embedding_context

logger = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("injection_model.json")
EMBEDDING_DIMENSION = 384  # the bundled MiniLM

_I = re.IGNORECASE


@dataclass(frozen=True)
class _Pattern:
    name: str  # the feature name, also the reason reported
    regex: re.Pattern[str]


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), _I)


# Verbs that tell a model to drop what it was told, and what they are aimed at (English).
_DROP_EN = (
    r"ignore|ignoring|disregard|disregarding|forget|forgetting|bypass|override|overrule|"
    r"skip|discard|abandon|neglect|set aside|throw out|pay no attention to|do not follow|"
    r"don't follow|stop following"
)
_TOLD_EN = (
    r"instructions?|directions?|directives?|guidelines|rules|prompts?|orders|commands|"
    r"context|programming|restrictions|constraints|messages?|everything|all of that"
)
_BEFORE_EN = (
    r"all|any|every|the|your|my|these|those|previous|prior|preceding|above|earlier|original"
)
# The same in other languages, written from the common phrasings of these attacks.
_DROP_DE = (
    r"ignorier\w*|vergiss|vergesst|vergessen sie|missacht\w*|übergeh\w*|verwirf|befolge nicht"
)
_TOLD_DE = r"anweisung\w*|instruktion\w*|regeln|befehle|vorgaben|richtlinien|alles|kontext|prompts?"
_OTHER = (
    # French, Spanish, Italian, Portuguese, Dutch: "ignore/forget (all) (previous) instructions"
    r"\b(?:ignore[sz]?|oubliez|oublie)\b.{0,30}\binstructions?\b",
    r"\b(?:ignora|ignore|olvida|olvide)\b.{0,30}\b(?:instrucciones|indicaciones|reglas)\b",
    r"\b(?:ignora|dimentica)\b.{0,30}\b(?:istruzioni|regole)\b",
    r"\b(?:ignore|ignora|esqueça|esquece)\b.{0,30}\b(?:instruções|regras)\b",
    r"\b(?:negeer|vergeet)\b.{0,30}\b(?:instructies|regels)\b",
    # Russian: ignore / forget (all) (previous) instructions
    r"\b(?:игнорируй\w*|забудь\w*)\b.{0,30}\b(?:инструкц\w*|правил\w*|указани\w*)",
)

PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        "override",
        _rx(
            rf"\b(?:{_DROP_EN})\b\s+(?:(?:{_BEFORE_EN})\s+){{0,3}}(?:\w+\s+)?(?:{_TOLD_EN})\b",
            rf"\b(?:{_DROP_EN})\b\s+(?:what|anything|everything) (?:i|you) (?:said|told|were told|"
            r"have been told|was told)",
            rf"\b(?:{_DROP_EN})\b\s+(?:everything|all)\s+(?:above|before|so far|previously)\b",
            rf"\b(?:{_DROP_DE})\b[^.?!\n]{{0,40}}?\b(?:{_TOLD_DE})\b",
            r"\b(?:alle|alles|die)\s+(?:vorherigen|bisherigen|obigen|vorangegangenen)\s+"
            r"(?:anweisungen|instruktionen|regeln|befehle)\b[^.?!\n]{0,30}\b(?:ignorier\w*|vergiss|"
            r"vergessen)",
            *_OTHER,
        ),
    ),
    _Pattern(
        "new_task",
        _rx(
            r"\bnew (?:instructions?|rules|directives?|tasks?|orders)\s*[:!]",
            r"\b(?:your|the) (?:new|real|actual|true) (?:instructions?|task|purpose|goal|rules)\b",
            r"\bfrom now on\b|\bfrom this point (?:on|forward)\b|\bhenceforth\b",
            r"\binstead,? (?:you will|you must|you should|do|say|write)\b",
            r"\bneue (?:anweisung\w*|instruktion\w*|regeln)\s*[:!]",
            r"\bab (?:jetzt|sofort|nun)\b|\bvon nun an\b|\bstattdessen\b",
        ),
    ),
    _Pattern(
        "role_play",
        _rx(
            r"\byou are now\b|\byou're now\b|\bfrom now on,? you are\b",
            r"\bpretend (?:to be|you are|you're|that you)\b|\bstay in character\b",
            r"\brole-?play\w*\b|\bplay the role of\b|\bin the role of\b",
            r"\bi want you to (?:act|pretend|behave|respond|be)\b",
            # "act as" addressed to the model, not "our accountant wants to act as an admin"
            r"(?:^|[.!?:;]\s*|\b(?:you|please|now)\s+(?:will\s+|must\s+|should\s+)?)"
            r"(?:act|acting|behave) as\b",
            r"\b(?:jetzt|nun|ab jetzt) bist du\b|\bdu bist (?:jetzt|nun|ab jetzt|ab sofort)\b",
            r"\btu so,? als\b|\bspiel\w* die rolle\b|\bschlüpf\w* in die rolle\b",
            r"\bich möchte, dass (?:du|sie) als\b",
        ),
    ),
    _Pattern(
        "prompt_leak",
        _rx(
            r"\bsystem ?prompt\b|\bsystem message\b|\bsystemanweisung\w*\b",
            r"\b(?:your|deine|ihre|the) (?:initial|original|hidden|secret|internal|system) "
            r"(?:prompt|instructions?|rules|message|anweisungen)\b",
            r"\b(?:reveal|show|print|repeat|display|output|tell me|leak|dump|recite|zeig\w*|"
            r"wiederhole|verrate)\b[^.?!\n]{0,30}\b(?:your|deine[nm]?|ihre[nm]?|the)\s+(?:\w+\s+)?"
            r"(?:prompts?|instructions?|anweisungen|guidelines|configuration)\b",
            r"\b(?:repeat|print|output)\b[^.?!\n]{0,20}"
            r"\b(?:text|words|everything) (?:above|before)\b",
            r"\bwhat (?:were|are) your (?:instructions|rules)\b",
        ),
    ),
    _Pattern(
        "forced_output",
        _rx(
            r"\b(?:just|only|simply)\s+(?:say|output|print|write|reply|respond|answer)\b",
            r"\b(?:respond|reply|answer)\s+(?:only\s+)?with\s*[:\"“„']",
            r"\b(?:say|print|output|write)\b\s*:?\s*[\"“„'][^\"”“']{1,60}[\"”“']"
            r"\s*(?:$|[.!]|and nothing)",
            r"\band nothing else\b|\bnothing but\b",
            r"\b(?:nur|einfach)\s+(?:sag\w*|schreib\w*|ausgeben|antworte\w*)\b",
            r"\b(?:sag|schreibe?|gib)\b[^.?!\n]{0,10}[\"“„'][^\"”“']{1,60}[\"”“']\s*(?:$|[.!])",
        ),
    ),
    _Pattern(
        "ignore_sources",
        _rx(
            r"\b(?:do not|don't|never)\s+(?:use|read|rely on|consult|look at|refer to)\b"
            r"[^.?!\n]{0,30}"
            r"\b(?:documents?|articles?|context|sources?|provided text)\b",
            r"\b(?:ignore|disregard)\b[^.?!\n]{0,20}\b(?:the )?(?:provided|given|retrieved) "
            r"(?:documents?|context|articles?|sources?)\b",
            r"\b(?:answer|respond)\b[^.?!\n]{0,20}\bfrom your own knowledge\b",
            r"\b(?:ignoriere|nutze nicht|verwende nicht)\b[^.?!\n]{0,20}"
            r"\b(?:die )?(?:dokumente|quellen|"
            r"artikel|kontext)\b",
        ),
    ),
    _Pattern(
        "jailbreak",
        _rx(
            r"\bjailbr\w*|(?-i:\bDAN\b)|\bdo anything now\b|\bdeveloper mode\b|\bgod mode\b",
            r"\b(?:unfiltered|uncensored|unrestricted|amoral)\b",
            r"\bno (?:restrictions|limits|limitations|filters|rules|guidelines|censorship)\b",
            r"\bwithout (?:any )?(?:restrictions|censorship|limits|filters|guidelines|rules)\b",
            r"\b(?:free|freed|broken free) (?:of|from) (?:all |any |the )?(?:restrictions|rules|"
            r"limits|guidelines|confines)\b",
            r"\bohne (?:jegliche |alle )?(?:einschränkungen|zensur|regeln|grenzen|filter)\b",
        ),
    ),
    _Pattern(
        "delimiter",
        _rx(
            # Chat-template and role markers pasted into a question to fake a new turn.
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?INST\]|<</?SYS>>",
            r"(?:^|\n)\s*(?:system|assistant|###\s*(?:system|instruction|response))\s*:",
            r"\bend of (?:the )?(?:prompt|input|instructions|document|context)\b",
            r"(?:^|\n)\s*(?:={3,}|-{3,}|#{3,}|\*{3,})\s*(?:$|\n|end\b)",
        ),
    ),
)

_IMPERATIVE = re.compile(
    r"(?:^|[.!?:]\s+|\s-\s)(?:write|tell|say|generate|formulate|print|output|give|show|answer|"
    r"explain to|"
    r"compose|create|translate|list|repeat|respond|reply|do|don't|"
    r"schreib\w*|sag\w*|generier\w*|formulier\w*|gib|zeig\w*|beantworte\w*|erzähl\w*|erstelle\w*|"
    r"übersetz\w*|antworte\w*|bitte)\b",
    _I,
)
_SECOND_PERSON = re.compile(r"\b(?:you|your|yourself|du|dich|dir|dein\w*)\b", _I)

# The features other than the embedding, in the order of the model's pattern weights.
PATTERN_FEATURES: tuple[str, ...] = (
    *(p.name for p in PATTERNS),
    "imperative",
    "second_person",
)
FEATURE_NAMES = PATTERN_FEATURES  # kept for callers of the earlier name

# How much the embedding must add to the logit for "semantic" to be named as a reason.
_SEMANTIC_REASON_LOGIT = 1.0


@dataclass(frozen=True)
class InjectionModel:
    pattern_weights: npt.NDArray[np.float64]
    embedding_weights: npt.NDArray[np.float64]
    bias: float
    threshold: float
    provenance: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InjectionModel:
        names = tuple(data["pattern_features"])
        if names != PATTERN_FEATURES:
            raise ValueError(f"injection model fitted on features {names}, not {PATTERN_FEATURES}")
        embedding = np.asarray(data["embedding_weights"], dtype=np.float64)
        if embedding.shape != (EMBEDDING_DIMENSION,):
            raise ValueError(f"injection model: {embedding.shape[0]} embedding weights")
        return cls(
            pattern_weights=np.asarray(data["pattern_weights"], dtype=np.float64),
            embedding_weights=embedding,
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            provenance=dict(data.get("provenance", {})),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "pattern_features": list(PATTERN_FEATURES),
            "pattern_weights": [round(float(w), 6) for w in self.pattern_weights],
            "embedding_weights": [round(float(w), 6) for w in self.embedding_weights],
            "bias": round(self.bias, 6),
            "threshold": round(self.threshold, 6),
            "provenance": self.provenance,
        }


@lru_cache(maxsize=1)
def shipped_model() -> InjectionModel:
    """The model in ``injection_model.json`` (written by ``manage.py injection_fit``)."""
    return InjectionModel.from_dict(json.loads(MODEL_PATH.read_text(encoding="utf-8")))


# The fit shifts the bias so that its cross-validated operating point scores 0.5.
DEFAULT_INJECTION_THRESHOLD = 0.5


@dataclass(frozen=True)
class InjectionVerdict:
    score: float
    injection: bool
    reasons: tuple[str, ...]


def injection_threshold() -> float:
    return float(getattr(settings, "CAIRN_INJECTION_THRESHOLD", DEFAULT_INJECTION_THRESHOLD))


def pattern_features(text: str) -> list[float]:
    """The phrase families (0/1) and the two cues, in PATTERN_FEATURES order."""
    hits = [1.0 if p.regex.search(text) else 0.0 for p in PATTERNS]
    imperatives = len(_IMPERATIVE.findall(text))
    second = len(_SECOND_PERSON.findall(text))
    return [
        *hits,
        min(imperatives, 3) / 3,
        min(second, 4) / 4,
    ]


def _embed(texts: Sequence[str]) -> np.ndarray:

    # Not a billable embedding of anybody's content: keep it out of the usage ledger's features.
    with embedding_context(account_id=None, feature="guard"):
        if len(texts) == 1 and texts[0] == " ".join(texts[0].split()):
            # A question: scanned twice on the way in (conversation_start, question_ask), and
            # retrieval embeds it next with the same model. One embedding serves all three
            # through retrieval's cache of question vectors (the same float32 values).

            return np.asarray([query_embedding(MINILM_MODEL_ID, texts[0])], dtype=np.float32)
        # Anything else (a question of several lines, earlier turns scanned again with
        # every follow-up) through this process's memory of vectors.

        return texts_embed(MINILM_MODEL_ID, list(texts))


def embeddings(texts: Sequence[str], *, strict: bool = False) -> npt.NDArray[np.float64]:
    """The texts' MiniLM vectors, one row each; zeros if the embedder cannot be used,
    unless ``strict`` (evaluations must not quietly measure a degraded detector)."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIMENSION))
    try:
        vectors = np.asarray(_embed(texts), dtype=np.float64)
    except Exception:  # the guard must never take the answer path down
        if strict:
            raise
        logger.warning("injection guard: embedder unavailable, patterns only", exc_info=True)
        return np.zeros((len(texts), EMBEDDING_DIMENSION))
    return vectors.reshape(len(texts), EMBEDDING_DIMENSION)


def feature_matrix(texts: Sequence[str], *, strict: bool = False) -> npt.NDArray[np.float64]:
    """One row per text: PATTERN_FEATURES, then the embedding (embedded in one batch)."""
    patterns = np.asarray([pattern_features(t) for t in texts], dtype=np.float64)
    patterns = patterns.reshape(len(texts), len(PATTERN_FEATURES))
    return np.hstack([patterns, embeddings(texts, strict=strict)])


def logits(features: npt.NDArray[np.float64], model: InjectionModel | None = None) -> np.ndarray:
    model = model or shipped_model()
    weights = np.concatenate([model.pattern_weights, model.embedding_weights])
    return np.asarray(features, dtype=np.float64) @ weights + model.bias


def score_features(
    features: npt.NDArray[np.float64], model: InjectionModel | None = None
) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.clip(logits(features, model), -30, 30)))


# A fixed prior outside the fit: two or more distinct instruction families in one question
# ("ignore the instructions above" and "show me your prompt"; "you are now" and "without
# restrictions") flag it whatever the learned weights say. The training sets hold few of
# the generic phrasings, so the fit alone under-weights families it rarely saw.
_FAMILY_PRIOR_MIN = 2
_FAMILY_PRIOR_SCORE = 0.75


def detector_scores(
    features: npt.NDArray[np.float64], model: InjectionModel | None = None
) -> npt.NDArray[np.float64]:
    """The shipped detector's scores: the logistic model, raised by the family prior."""
    features = np.asarray(features, dtype=np.float64)
    scores = score_features(features, model)
    families = (features[:, : len(PATTERNS)] > 0).sum(axis=1)
    return np.where(families >= _FAMILY_PRIOR_MIN, np.maximum(scores, _FAMILY_PRIOR_SCORE), scores)


def _reasons(features: npt.NDArray[np.float64], model: InjectionModel) -> tuple[str, ...]:
    named = dict(zip(PATTERN_FEATURES, features[: len(PATTERN_FEATURES)], strict=True))
    reasons = [p.name for p in PATTERNS if named[p.name] > 0]
    semantic = float(features[len(PATTERN_FEATURES) :] @ model.embedding_weights)
    if semantic >= _SEMANTIC_REASON_LOGIT:
        reasons.append("semantic")
    return tuple(reasons)


def injection_scan(text: str) -> InjectionVerdict:
    """Score one question for prompt injection; ``reasons`` name the features that fired.

    Fast once the embedder is warm (one short embedding, shared with retrieval, and a
    dozen regexes).
    """
    model = shipped_model()
    features = feature_matrix([text])
    score = float(detector_scores(features, model)[0])
    if math.isnan(score):
        score = 0.0
    return InjectionVerdict(
        score=round(score, 4),
        injection=score >= injection_threshold(),
        reasons=_reasons(features[0], model),
    )
