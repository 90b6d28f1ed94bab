"""Urgency cues and a sentiment lexicon: general signals, read alongside the embeddings.

The cue groups are the ways support tickets commonly say "this cannot wait" (an outage,
lost access, lost data, a security problem, money going wrong, a deadline, a whole
organisation affected) and "this can wait". They are general language written from how
support teams triage, not phrases taken from the labelled set; how much each group counts
is fitted (tickets.classification.local), inside the cross-validation folds when measured.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


URGENCY_CUES: dict[str, re.Pattern[str]] = {
    "outage": _words(
        r"down", r"outages?", r"offline", r"unreachable", r"unavailable", r"not loading",
        r"won'?t load", r"(?:stopped|stops|not|isn'?t|aren'?t) (?:working|responding)",
        r"crash(?:ed|es|ing)?", r"5\d\d(?: errors?)?", r"time[sd]? ?out", r"broken",
        r"nothing works", r"dead",
    ),
    "access": _words(
        r"locked out", r"lock(?:ed)? us out", r"can(?:no|'?)t (?:log ?in|sign ?in|access|get in)",
        r"cannot (?:log ?in|sign ?in|access|get in)", r"unable to (?:log ?in|sign ?in|access)",
        r"lost access", r"no access", r"(?:login|sign[- ]in) (?:fails|failing|broken)",
    ),
    "data_loss": _words(
        r"data loss", r"lost (?:all |our |my )?(?:data|records|files|invoices)", r"wiped",
        r"disappeared", r"vanished", r"gone missing", r"deleted (?:by mistake|accidentally)",
        r"accidentally deleted", r"corrupt(?:ed)?", r"missing (?:data|records|invoices)",
    ),
    "security": _words(
        r"breach(?:ed)?", r"hack(?:ed|er|ers)?", r"compromised", r"unauthori[sz]ed",
        r"suspicious", r"phishing", r"leak(?:ed|ing)?", r"exposed", r"vulnerab\w*",
        r"stolen", r"fraud\w*", r"someone else (?:logged|is using)",
    ),
    "deadline": _words(
        r"deadline", r"by (?:end of (?:day|today)|tonight|tomorrow|noon|this afternoon)",
        r"eod", r"within (?:the|an|one) hour", r"in (?:an|one|two|2) hours?", r"today",
        r"legal", r"lawyer", r"court", r"regulator\w*", r"audit(?:or)?", r"tax filing",
        r"payroll",
    ),
    "immediacy": _words(
        r"asap", r"a\.s\.a\.p", r"urgent(?:ly)?", r"emergency", r"immediately",
        r"right (?:now|away)", r"critical", r"sev ?[01]", r"p[01]", r"as soon as possible",
        r"blocker", r"blocking", r"help!+",
    ),
    "scope": _words(
        r"production", r"prod", r"all (?:of )?(?:our |the )?(?:users|customers|clients|staff)",
        r"every(?:one|body)", r"(?:whole|entire) (?:team|company|office|organi[sz]ation)",
        r"nobody (?:can|is able)", r"no one (?:can|is able)", r"live site", r"go[- ]live",
    ),
    "money": _words(
        r"charged (?:twice|two times|three times|again)", r"double[- ]charged",
        r"overcharged", r"losing (?:money|revenue|sales|customers)", r"refund (?:now|today)",
        r"chargebacks?",
    ),
    # The other way: the asker says it can wait.
    "calm": _words(
        r"no rush", r"no hurry", r"whenever", r"not urgent", r"low priority",
        r"just (?:curious|wondering|a question)", r"wondering", r"would be nice",
        r"feature request", r"suggestion", r"at your convenience",
        r"when you (?:get|have) a (?:chance|moment)",
        r"no big deal", r"in the future", r"someday",
    ),
}  # fmt: skip

NEGATIVE_WORDS = _words(
    r"angry", r"furious", r"frustrat\w*", r"annoy\w*", r"unacceptable", r"ridiculous",
    r"terrible", r"awful", r"horrible", r"worst", r"useless", r"disappoint\w*", r"upset",
    r"fed up", r"sick of", r"joke", r"scam", r"incompetent", r"again\?*!+", r"still not",
    r"cancel\w*", r"complain\w*", r"wtf", r"seriously", r"hate", r"garbage", r"pathetic",
    r"waste", r"nightmare", r"unhappy", r"not happy", r"third time",
    r"no one (?:has )?(?:replied|answered)",
)  # fmt: skip
POSITIVE_WORDS = _words(
    r"thanks?(?: you)?(?: so much)?", r"thank you", r"love", r"great", r"awesome",
    r"amazing", r"excellent", r"fantastic", r"appreciate\w*", r"happy", r"pleased",
    r"brilliant", r"wonderful", r"perfect", r"kudos", r"cheers", r"delighted", r"impressed",
    r"helpful", r"glad",
)  # fmt: skip

CUE_NAMES = tuple(URGENCY_CUES)


def urgency_cues(text: str) -> dict[str, bool]:
    """Which cue groups ``text`` shows."""
    return {name: bool(pattern.search(text)) for name, pattern in URGENCY_CUES.items()}


def urgency_cue_features(text: str) -> npt.NDArray[np.float64]:
    """The cue groups as 0/1 features, in CUE_NAMES order."""
    cues = urgency_cues(text)
    return np.array([float(cues[name]) for name in CUE_NAMES])


def sentiment_lexicon_features(text: str) -> npt.NDArray[np.float64]:
    """Negative words, positive words, exclamation marks and shouting, each capped."""
    shouted = sum(1 for word in re.findall(r"\b[A-Z]{4,}\b", text) if word not in {"HTTP", "JSON"})
    return np.array(
        [
            min(len(NEGATIVE_WORDS.findall(text)), 3),
            min(len(POSITIVE_WORDS.findall(text)), 3),
            min(text.count("!"), 3),
            min(shouted, 3),
        ],
        dtype=np.float64,
    )


# The vocabulary of the default categories: how support tickets about each usually talk.
# Custom categories have none (the embeddings alone decide for them).
CATEGORY_CUES: dict[str, re.Pattern[str]] = {
    "billing": _words(
        r"charge[ds]?", r"charging", r"bill(?:ed|ing)?", r"refund\w*", r"payments?", r"paid",
        r"pay", r"price[sd]?", r"pricing", r"plans?", r"subscriptions?", r"card", r"vat",
        r"tax", r"receipts?", r"discount\w*", r"coupon", r"renew\w*", r"quote", r"prorat\w*",
        r"credit", r"upgrade", r"downgrade", r"cancel\w*", r"trial", r"\$\d+",
    ),
    "account": _words(
        r"log ?in", r"logged", r"sign ?in", r"sign[- ]up", r"passwords?", r"2fa",
        r"two-factor", r"mfa", r"sso", r"saml", r"users?", r"admins?", r"owner\w*", r"access",
        r"locked", r"gdpr", r"personal data", r"delete my", r"e-?mail address",
        r"permissions?", r"roles?", r"profile", r"workspace", r"invite\w*", r"seats?",
    ),
    "technical": _words(
        r"errors?", r"api", r"bug", r"sync\w*", r"integrations?", r"webhooks?", r"export\w*",
        r"import\w*", r"crash\w*", r"slow", r"time ?outs?", r"\d{3}", r"sdk", r"endpoints?",
        r"fails?", r"failing", r"failed", r"broken", r"doesn'?t work", r"not working",
        r"load\w*", r"browser", r"app", r"csv", r"pdf", r"json",
    ),
    "other": _words(
        r"feature request", r"roadmap", r"partner\w*", r"press", r"hiring", r"demo",
        r"feedback", r"certification", r"iso", r"soc ?2", r"legal", r"suggestion", r"idea",
        r"would be nice", r"case study", r"interview",
    ),
}  # fmt: skip


def category_cue_features(text: str, categories: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """Words of each category's vocabulary in ``text`` (capped at 3), for the categories
    that have one, in ``categories`` order."""
    return np.array(
        [min(len(CATEGORY_CUES[c].findall(text)), 3) for c in categories if c in CATEGORY_CUES],
        dtype=np.float64,
    )
