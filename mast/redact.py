"""Secret redaction, applied before anything is stored or shown.

Contract:
- :data:`CATALOGUE` is the one table of credential shapes.  It drives both engines: the
  store runs it inside DuckDB (:func:`sql_redact`, vectorised over a whole ingest batch)
  and :func:`redact` runs it in Python (text that never passes through the store, such as
  a judge prompt).  The two give the same text for the same input (a test runs every
  catalogue case through both), so patterns are written in the common subset of Python
  ``re`` and RE2: no look-around, no back-references in patterns, explicit ASCII classes
  instead of ``\\s``/``\\d``/``\\w``/``\\b`` (whose meaning differs between the two).
- Every replacement puts exactly one :data:`REDACTED` marker per secret, and no pattern
  can match across a marker (``[`` is outside every value class), so redacting
  twice changes nothing and the number of secrets replaced is the number of markers added
  (:func:`count_markers`); the store keeps that count per trace and per step.
- Each shape names a *hint*: a regex fragment that every match of it contains.  The
  hints joined (:data:`HINTS`) are the cheap pre-check both engines run first; a value
  without a hint is never scanned further.  A hint is as narrow as one scan allows: a
  credential's name counts only followed by its separator (``key:``, ``token=``, not
  "keyboard" or "the author"), a JWT only with its second part (``eyJ….eyJ``, not any
  base64 of JSON): each value it lets through costs the scan of every pass, and each
  column of a batch with one such value the planning of the whole chain (bench/RESULTS.md,
  issue 16 session 7).  Neighbouring shapes of one family run as one pass
  (:data:`PROGRAM`, measured in bench/RESULTS.md).
- The generic detector (:data:`ASSIGNMENT`) catches ``key=`` / ``secret:`` / ``token``
  / ``password`` assignments whose value looks random (:func:`high_entropy`; the same test
  is written in SQL by :func:`_sql_high_entropy`), so ``max_tokens: 1024``, ``"token":
  "Hello"``, hex digests and UUIDs under a ``*_key`` name stay as they are.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

REDACTED = "[REDACTED]"

# A value character of a token or key: never a quote, backslash (a JSON escape stays
# whole), whitespace, or "[" (a marker is never matched again).
_V = r"A-Za-z0-9+/=_~-"
# Before a shape that starts with letters: the start of the text or a character that is
# not a letter or digit, kept by the replacement (RE2 has no look-behind).  "task-…" is
# not an "sk-…" key; "crew-sk-…" (a key inside an identifier) is.
_START = r"(^|[^A-Za-z0-9])"
# Quote around a key or value, possibly JSON-escaped inside a JSON string.
_Q = r"""(?:\\?["'])?"""
_SEP = _Q + r"[ \t]*[:=][ \t]*" + _Q
# An HTTP credential (RFC 7235 token68); it does not end in a dot, so the full stop of a
# sentence after it stays.
_TOKEN68 = r"[A-Za-z0-9._~+/=-]"
_TOKEN68_END = r"[A-Za-z0-9_~+/=-]"
# The hint of every shape that follows a credential's name (and of the assignment
# detector): the name's last word and the separator after it.  The words are those the
# names end in (``AccountKey``, ``client_secret``, ``passwd``, ``MY_AUTH``); ``token``
# only where a name can end in it: after a boundary, or in access/auth/refresh (``s``,
# ``h``) token, so "SystemEntropyOriginTrialToken": (a public token web pages carry,
# never a credential here) does not open the chain for a whole page.
_NAMED_HINT = (r"(?i:(?:keys?|secrets?|(?:^|[^a-z0-9]|s|h)tokens?|passw(?:or)?ds?|credentials?|auths?|authorization)"
               + _Q + r"[ \t]*[:=])")


@dataclass(frozen=True)
class Shape:
    """One credential shape: ``pattern`` is replaced by ``replacement`` (``\\1`` keeps a
    prefix group) wherever it matches; every match contains a match of ``hint``.

    ``family``: shapes of one family that stand next to each other in the catalogue run as
    one alternation (:data:`PROGRAM`): a regex that cannot start from a literal is scanned
    at every byte, so six bare-token shapes cost six scans, merged one.  ``token`` (the
    ``token`` family): the token alone, matched after :data:`_START`; ``named`` (the
    ``named`` family): the name-and-separator part, and ``token`` the value after it.
    """

    name: str
    pattern: str
    replacement: str
    hint: str
    family: str | None = None
    token: str = ""
    named: str = ""


def _token(name: str, token: str, hint: str) -> Shape:
    return Shape(name, _START + "(?:" + token + ")", r"\1" + REDACTED, hint, "token", token=token)


def _named(name: str, names: str, value: str, hint: str) -> Shape:
    """A value after a credential's name, case-insensitive (``AccountKey=…``)."""
    named = "(?:" + names + ")" + _SEP
    return Shape(name, "(?i)(" + named + ")" + value, r"\1" + REDACTED, hint, "named", token=value, named=named)


#: In order: a later shape sees the text with the earlier ones already replaced (a private
#: key block goes first, so no shape matches pieces of it).
CATALOGUE: tuple[Shape, ...] = (
    Shape("pem-private-key",  # RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP … (any "<X> PRIVATE KEY")
          r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----[^\"]*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----",
          REDACTED, r"PRIVATE KEY"),
    Shape("pem-private-key-truncated",  # a block cut off before its END line
          r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?:[A-Za-z0-9+/=:,. \t\r\n-]|\\[nrt/\\])*",
          REDACTED, r"PRIVATE KEY"),
    Shape("jwt", r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*", REDACTED,
          r"eyJ[A-Za-z0-9_-]{10,}\.eyJ"),
    # scheme://user:PASS@host; from the "://" (a literal to scan for), the scheme is not needed
    Shape("url-password", r"(://[^:/@ \t\r\n\"'<>\\\[\]]*:)[^@/ \t\r\n\"'<>\\\[\]]+@",
          r"\1" + REDACTED + "@", r"://[^:/@ \t\r\n\"'<>\\\[\]]*:[^@/ \t\r\n\"'<>\\\[\]]+@"),
    Shape("aws-key-pair",  # an access key id followed by its bare secret key
          r"(?:AKIA|ASIA)[A-Z0-9]{16}([^A-Za-z0-9/+=\r\n]{1,12})[A-Za-z0-9/+=]{40}",
          REDACTED + r"\1" + REDACTED, r"AKIA|ASIA"),
    _token("aws-access-key-id", r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}", r"AKIA|ASIA|ABIA|ACCA|A3T"),
    _token("github-token", r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}", r"gh[pousr]_|github_pat_"),
    _token("stripe-key", r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,}",
           r"k_live_|k_test_|whsec_"),
    _token("openai-anthropic-key", r"sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}", r"sk-[A-Za-z0-9_-]{16}"),
    _token("google-api-key", r"AIza[0-9A-Za-z_-]{35}", r"AIza"),
    _token("npm-token", r"npm_[A-Za-z0-9]{36}", r"npm_"),
    _named("aws-secret-key",  # a bare 40-character secret, named as one
           r"aws_?secret_?(?:access_?)?key|secret_?access_?key", r"[A-Za-z0-9/+=]{40}", _NAMED_HINT),
    _named("azure-key",  # storage / service bus connection strings, APIM and Azure OpenAI headers
           r"AccountKey|SharedAccessKey|azure[a-z_-]*key|Ocp-Apim-Subscription-Key|api-key", "[" + _V + "]{20,}",
           _NAMED_HINT),
    _named("credential-assignment",  # names that only ever hold a credential: any value
           r"api[_-]?key|x-api-key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token"
           r"|refresh[_-]?token|private[_-]?key|password|passwd|secret", r"[^\"' \t\r\n,;}\\\[]{4,}", _NAMED_HINT),
    Shape("azure-sas-signature", r"(sig=)[A-Za-z0-9%+/=]{16,}", r"\1" + REDACTED, r"sig="),
    Shape("slack-webhook", r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/+-]{8,}",
          r"\1" + REDACTED, r"hooks\.slack\.com"),
    Shape("slack-token", r"(?:xox[abposre]-|xapp-[0-9]-)[A-Za-z0-9-]{10,}", REDACTED, r"xox[abposre]-|xapp-"),
    Shape("discord-webhook", r"((?:discord|discordapp)\.com/api/webhooks/)[0-9]{5,}/[A-Za-z0-9_-]{20,}",
          r"\1" + REDACTED, r"/api/webhooks/"),
    Shape("pypi-token", r"pypi-AgE[A-Za-z0-9_-]{50,}", REDACTED, r"pypi-AgE"),
    Shape("authorization-header",  # with or without a scheme
          r"(?i)(authorization" + _SEP + r"(?:bearer[ \t]+|basic[ \t]+|token[ \t]+)?)"
          + _TOKEN68 + "{7,}" + _TOKEN68_END,
          r"\1" + REDACTED, _NAMED_HINT),
    Shape("bearer-token", r"(?i)(bearer[ \t]+)" + _TOKEN68 + "{19,}" + _TOKEN68_END, r"\1" + REDACTED,
          r"(?i:bearer)[ \t]"),
)


def _program(shapes: tuple[Shape, ...]) -> list[tuple[str, str]]:
    """The (pattern, replacement) passes both engines run: runs of one family merged."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(shapes):
        j = i
        while j + 1 < len(shapes) and shapes[i].family and shapes[j + 1].family == shapes[i].family:
            j += 1
        run = shapes[i:j + 1]
        if len(run) == 1:
            out.append((run[0].pattern, run[0].replacement))
        elif run[0].family == "token":
            out.append((_START + "(?:" + "|".join(s.token for s in run) + ")", r"\1" + REDACTED))
        else:  # named: one group per alternative; an unmatched group is empty in both engines
            out.append(("(?i)" + "|".join(f"({s.named}){s.token}" for s in run),
                        "".join(f"\\{k + 1}" for k in range(len(run))) + REDACTED))
        i = j + 1
    return out


#: what both engines run, in order
PROGRAM: list[tuple[str, str]] = _program(CATALOGUE)


@dataclass(frozen=True)
class Assignment:
    """The high-entropy detector: ``pattern``'s group ``group`` is a candidate value, and
    each candidate that passes :func:`high_entropy` is replaced wherever it occurs."""

    name: str
    pattern: str
    group: int
    hint: str


ASSIGNMENT = Assignment(
    "high-entropy-assignment",
    # The name: a word ending in one of these, alone or after "_", "." or "-" segments
    # (session_token, webhook.signing-key); a camelCase name is not split, so
    # "SystemEntropyOriginTrialToken" (a public token Bing puts in its pages) is left
    # alone, while the credential names above catch accessToken, apiKey, clientSecret.
    r"(?i)(^|[^a-z0-9])((?:[a-z0-9]+[_.-])*(?:key|secret|token|password|passwd|credential|auth)s?" + _SEP
    + r")([" + _V + r"]{16,})",
    3, _NAMED_HINT)

#: the pre-check: a value matching none of these contains no catalogue shape
HINTS = "|".join(dict.fromkeys([s.hint for s in CATALOGUE] + [ASSIGNMENT.hint]))

@functools.cache
def _engine() -> tuple[re.Pattern, list[tuple[re.Pattern, str]], re.Pattern]:
    # Compiled when Python first redacts: an ingest redacts in DuckDB only, and compiling
    # the catalogue's patterns was a third of this module's import.
    return re.compile(HINTS), [(re.compile(p), r) for p, r in PROGRAM], re.compile(ASSIGNMENT.pattern)


_HEX = re.compile(r"[0-9A-Fa-f-]+")
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")
# Words and numbers joined by separators ("messages_0_content", "model-2024-07"): a name,
# not a key; a random token mixes letters and digits inside its runs.
_WORDS = re.compile(r"[_/-]*(?:[A-Za-z]+|[0-9]+)(?:[_/-]+(?:[A-Za-z]+|[0-9]+))*[_/-]*")

#: the high-entropy test, in numbers (both engines)
MIN_LENGTH = 16
MIN_DISTINCT = 10


def high_entropy(value: str) -> bool:
    """Whether an assigned value looks random: long, letters and digits mixed within a run,
    many distinct characters, and not a hex digest or UUID (those name things)."""
    return (len(value) >= MIN_LENGTH and bool(_DIGIT.search(value)) and bool(_LETTER.search(value))
            and len(set(value)) >= MIN_DISTINCT and not _HEX.fullmatch(value) and not _WORDS.fullmatch(value))


def redact(text: str | None) -> str | None:
    """Return ``text`` with every credential-looking substring replaced."""
    if not text:
        return text
    hints, program, assign = _engine()
    if not hints.search(text):
        return text
    # Candidates are read from the text as given (as in SQL, where the catalogue's output
    # cannot be named twice without computing it twice); one the catalogue already
    # replaced is no longer there to replace.
    values = [v for v in (m.group(ASSIGNMENT.group) for m in assign.finditer(text)) if high_entropy(v)]
    for rx, rep in program:
        text = rx.sub(rep, text)
    for value in values:
        text = text.replace(value, REDACTED)
    return text


def count_markers(text: str | None) -> int:
    return text.count(REDACTED) if text else 0


def redact_counted(text: str | None) -> tuple[str | None, int]:
    """``redact(text)`` and the number of secrets it replaced."""
    out = redact(text)
    return out, count_markers(out) - count_markers(text)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _sql_high_entropy(x: str) -> str:
    return (f"(length({x}) >= {MIN_LENGTH} AND regexp_matches({x}, '[0-9]') AND regexp_matches({x}, '[A-Za-z]')"
            f" AND length(list_distinct(string_split({x}, ''))) >= {MIN_DISTINCT}"
            f" AND NOT regexp_full_match({x}, {_lit(_HEX.pattern)})"
            f" AND NOT regexp_full_match({x}, {_lit(_WORDS.pattern)}))")


def sql_redact(expr: str) -> str:
    """Wrap a SQL string expression so DuckDB applies the whole catalogue to it (as :func:`redact`)."""
    out = expr
    for pattern, rep in PROGRAM:
        out = f"regexp_replace({out}, {_lit(pattern)}, {_lit(rep)}, 'g')"
    cands = f"regexp_extract_all({expr}, {_lit(ASSIGNMENT.pattern)}, {ASSIGNMENT.group})"
    return (f"list_reduce(list_filter({cands}, lambda v: {_sql_high_entropy('v')}),"
            f" lambda acc, v: replace(acc, v, {_lit(REDACTED)}), {out})")


def sql_hinted(expr: str) -> str:
    """A SQL condition: whether ``expr`` contains any hint (the pre-check of :func:`redact`)."""
    return f"regexp_matches({expr}, {_lit(HINTS)})"


def _scoped(pattern: str) -> str:
    """``pattern`` as one alternative of a larger regex: a leading ``(?i)`` becomes a group's flag."""
    return "(?i:" + pattern[4:] + ")" if pattern.startswith("(?i)") else "(?:" + pattern + ")"


#: Every pass of :data:`PROGRAM` and the assignment detector, as one alternation.  A value it
#: does not match comes out of the whole chain unchanged (no pass matches it, so no pass
#: changes it for the next one, and there is no candidate to replace), so the store runs
#: the chain only on values that contain a hint *and* match this: one scan instead of 15
#: for a value that merely mentions a "key" or a "token" (bench/RESULTS.md, issue 16).
ANY_PASS = "|".join(_scoped(p) for p, _ in PROGRAM) + "|" + _scoped(ASSIGNMENT.pattern)


def sql_matched(expr: str) -> str:
    """A SQL condition: whether some pass of the catalogue matches ``expr`` (see :data:`ANY_PASS`)."""
    return f"regexp_matches({expr}, {_lit(ANY_PASS)})"


def sql_markers(expr: str) -> str:
    """A SQL expression: the number of :data:`REDACTED` markers in ``expr`` (0 for NULL)."""
    return f"coalesce((length({expr}) - length(replace({expr}, {_lit(REDACTED)}, ''))) // {len(REDACTED)}, 0)"
