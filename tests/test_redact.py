"""The secrets catalogue (mast/redact.py): every shape caught by Python and by the store's
SQL alike, the pre-check never skipping one, and no false positive on ids, hashes and text.

Every secret below is made up, and is built from pieces so that no file in the repository
holds a string a secret scanner would flag.
"""

from __future__ import annotations

import base64
import hashlib
import random
import string
import uuid

import duckdb
import pytest

from mast.redact import ASSIGNMENT, CATALOGUE, HINTS, REDACTED, high_entropy, redact, redact_counted, \
    sql_hinted, sql_matched, sql_redact

_rng = random.Random(11)


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


_B64 = string.ascii_letters + string.digits + "+/"
_AWS_ID = "AK" + "IA" + _rand(16, string.ascii_uppercase + string.digits)
_AWS_SECRET = _rand(40, _B64)
_PEM_BODY = "\n".join(_rand(64, _B64) for _ in range(3))


def _pem(kind: str, headers: str = "") -> str:
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{headers}{_PEM_BODY}\n-----END {kind}PRIVATE KEY-----"


_AZ = _rand(86, _B64)
_JWT = "ey" + "J" + _rand(20) + ".ey" + "J" + _rand(40) + "." + _rand(43, string.ascii_letters + "_-")

#: (shape, text with a secret, the secret): the text after redaction must not hold the
#: secret, and must hold one marker per secret
CASES: list[tuple[str, str, str]] = [
    ("pem-private-key", f"key:\n{_pem('RSA ')}\nend", _PEM_BODY),
    ("pem-private-key", _pem(""), _PEM_BODY),
    ("pem-private-key", _pem("EC "), _PEM_BODY),
    ("pem-private-key", _pem("DSA "), _PEM_BODY),
    ("pem-private-key", _pem("OPENSSH "), _PEM_BODY),
    ("pem-private-key", _pem("ENCRYPTED "), _PEM_BODY),
    ("pem-private-key", _pem("RSA ", "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A1B2C3D4E5F\n\n"), _PEM_BODY),
    ("pem-private-key", f"-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{_PEM_BODY}\n"
                        "-----END PGP PRIVATE KEY BLOCK-----", _PEM_BODY),
    # as JSON text (escaped newlines), the way metadata and attributes are stored
    ("pem-private-key", '{"k": "' + _pem("RSA ").replace("\n", "\\n") + '"}', _PEM_BODY.split("\n")[1]),
    ("pem-private-key-truncated", _pem("RSA ").split("-----END")[0], _PEM_BODY.split("\n")[2]),
    ("jwt", f"cookie: session={_JWT}; Path=/", _JWT.split(".")[1]),
    ("url-password", "postgres://admin:" + "Pa55" + "word!x@db.internal:5432/app", "Pa55word!x"),
    ("url-password", "redis://:" + "s3cr" + "etpw@cache:6379", "s3cretpw"),
    ("url-password", "amqps://svc:" + "hun" + "ter2@mq", "hunter2"),
    ("aws-key-pair", f"creds {_AWS_ID} {_AWS_SECRET}", _AWS_SECRET),
    ("aws-access-key-id", f"id={_AWS_ID}.", _AWS_ID),
    ("aws-access-key-id", "AS" + "IA" + _rand(16, string.ascii_uppercase), "IA"),
    ("aws-secret-key", f"aws_secret_access_key = {_AWS_SECRET}", _AWS_SECRET),
    ("aws-secret-key", f'{{"SecretAccessKey": "{_AWS_SECRET}"}}', _AWS_SECRET),
    ("aws-secret-key", f"AWS_SECRET_ACCESS_KEY={_AWS_SECRET}", _AWS_SECRET),
    ("github-token", "token ghp" + "_" + _rand(36), None),
    ("github-token", "gho" + "_" + _rand(36), None),
    ("github-token", "ghs" + "_" + _rand(36), None),
    ("github-token", "ghu" + "_" + _rand(36) + " and ghr" + "_" + _rand(36), None),
    ("github-token", "use github" + "_pat_" + _rand(22) + "_" + _rand(59), None),
    ("stripe-key", "sk" + "_live_" + _rand(24), None),
    ("stripe-key", "rk" + "_live_" + _rand(24), None),
    ("stripe-key", "sk" + "_test_" + _rand(24), None),
    ("stripe-key", "whsec" + "_" + _rand(32), None),
    ("openai-anthropic-key", "OPENAI_API_KEY is sk-" + _rand(48), None),
    ("openai-anthropic-key", "sk-proj-" + _rand(40, string.ascii_letters + "_-"), None),
    ("openai-anthropic-key", "sk-ant-api03-" + _rand(80, string.ascii_letters + "_-"), None),
    ("google-api-key", "AI" + "za" + _rand(35, string.ascii_letters + string.digits + "_-"), None),
    ("azure-key", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + _AZ + "==;"
                  "EndpointSuffix=core.windows.net", _AZ),
    ("azure-key", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey="
                  + _rand(43, _B64) + "=", None),
    ("azure-key", "Ocp-Apim-Subscription-Key: " + _rand(32, "0123456789abcdef"), None),
    ("azure-key", "AZURE_OPENAI_API_KEY=" + _rand(32, "0123456789abcdef"), None),
    ("azure-key", '{"api-key": "' + _rand(32, "0123456789abcdef") + '"}', None),
    ("azure-sas-signature", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=" + _rand(40) + "%3D",
     None),
    ("slack-webhook", "https://hooks.slack.com/services/T" + _rand(8, string.ascii_uppercase) + "/B"
                      + _rand(8, string.ascii_uppercase) + "/" + _rand(24), None),
    ("slack-token", "xo" + "xb-" + _rand(12, string.digits) + "-" + _rand(24), None),
    ("slack-token", "xo" + "xp-" + _rand(12, string.digits) + "-" + _rand(24), None),
    ("slack-token", "xa" + "pp-1-" + _rand(11) + "-" + _rand(30), None),
    ("discord-webhook", "https://discord.com/api/webhooks/" + _rand(18, string.digits) + "/" + _rand(68), None),
    ("npm-token", "//registry.npmjs.org/:_authToken=npm" + "_" + _rand(36), None),
    ("pypi-token", "password = pypi" + "-AgEIcHlwaS5vcmc" + _rand(60, string.ascii_letters + "_-"), None),
    ("authorization-header", "Authorization: Basic " + base64.b64encode(b"user:pass-w0rd").decode(), None),
    ("authorization-header", '{"authorization": "Token ' + _rand(30) + '"}', None),
    ("bearer-token", "curl -H 'Bearer " + _rand(40) + "'", None),
    ("credential-assignment", 'api_key="' + _rand(10) + '"', None),
    ("credential-assignment", "password: hunter2x", "hunter2x"),
    ("credential-assignment", '{"client_secret": "' + _rand(30) + '"}', None),
    ("credential-assignment", "\\\"password\\\": \\\"in-json-in-json\\\"", "in-json-in-json"),
    ("high-entropy-assignment", "session_token=" + _rand(24), None),
    ("high-entropy-assignment", '"webhook.signing-key": "' + _rand(32, _B64) + '"', None),
    ("high-entropy-assignment", "MY_SERVICE_AUTH: " + _rand(20), None),
    ("credential-assignment", '{"refreshToken": "' + _rand(40, _B64) + '"}', None),   # camelCase names too
]


def _secret(text: str, secret: str | None) -> str:
    """The part of ``text`` that must be gone: given, or the last token-looking run."""
    if secret:
        return secret
    runs = [r for r in "".join(c if c.isalnum() or c in "_-+/" else " " for c in text).split() if len(r) >= 8]
    return runs[-1][-8:]


def _sql(values: list[str | None]) -> list[tuple[bool, str | None]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    rows = con.execute(f"SELECT {sql_hinted('x')}, CASE WHEN {sql_hinted('x')} THEN {sql_redact('x')} ELSE x END "
                       "FROM t ORDER BY i").fetchall()
    con.close()
    return rows


def test_every_shape_has_a_case():
    assert {s.name for s in CATALOGUE} | {ASSIGNMENT.name} == {c[0] for c in CASES}


@pytest.mark.parametrize("shape,text,secret", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_python_redacts_the_secret(shape, text, secret):
    out, n = redact_counted(text)
    assert _secret(text, secret) not in out, out
    assert n >= 1 and out.count(REDACTED) == n
    assert redact(out) == out  # a second pass changes nothing: markers are never matched again


def test_sql_and_python_agree_on_every_case():
    texts = [c[1] for c in CASES]
    rows = _sql(texts)
    for text, (hinted, stored) in zip(texts, rows):
        assert hinted, f"the pre-check skipped {text!r}"
        assert stored == redact(text)


@pytest.mark.parametrize("shape", [s.name for s in CATALOGUE])
def test_the_precheck_catches_every_shape_alone(shape):
    # The hint must be in the secret itself, not only in the words around it in a case.
    import re
    pat = next(s for s in CATALOGUE if s.name == shape)
    hint, own = re.compile(HINTS), re.compile(pat.hint)
    for _, text, _ in (c for c in CASES if c[0] == shape):
        for m in re.finditer(pat.pattern, text):
            assert hint.search(m.group()), (shape, m.group())
            assert own.search(m.group()), (shape, pat.hint, m.group())


NEGATIVES = [
    "commit 3f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b",
    "sha256:" + hashlib.sha256(b"x").hexdigest(),
    '"cache_key": "' + hashlib.sha256(b"y").hexdigest() + '"',
    '"idempotency_key": "' + str(uuid.UUID(int=12345678901234567890)) + '"',
    "trace t1-82fc96b20b295bfc5f4cc3587086e0d6 span 5f2b9c0d1e2f3a4b",
    '{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}',
    base64.b64encode(b"The quick brown fox jumps over the lazy dog, then asks for the weather in Paris.").decode(),
    base64.b64encode(b'{"role": "user", "content": "hello there, general kenobi"}').decode(),
    "max_tokens: 1024, total_tokens=2048, token_count: 17",
    '{"token": "Hello", "tokens": [" world", "!"]}',
    "the task-decomposition-agent-with-a-long-name asked the risk-assessment-specialist-agent",
    "ask-questions-about-the-spreadsheet-first",
    "tokenizer: bert-base-uncased, model: gpt-4o-mini-2024-07-18",
    "https://github.com/ag2ai/ag2/blob/main/README.md and http://localhost:8080/v1/chat",
    "mail alice@example.com or see git@github.com:org/repo.git",
    "primary_key: user_id; foreign key = order_id",
    "The password must be at least 8 characters. Enter your secret question.",
    "Bearer of bad news",
    "ASIA and AKIA are just words here; AIza too",
    "sk-short",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "already redacted: api_key=[REDACTED] and sk-[REDACTED]",
    # a public token web pages carry (scraped into web-surfer traces): a camelCase name is
    # not split into words, so only the credential names catch camelCase
    '"SystemEntropyOriginTrialToken": "A5is4nwJJVnhaJpUr1URgj4vvAXSiHoK0VBbM9fawMskbDUj9WUREpa3JzGAo6xd1Cp2v"',
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_no_false_positive(text):
    assert redact(text) == text


def test_no_false_positive_in_sql_either():
    assert [stored for _, stored in _sql(NEGATIVES)] == NEGATIVES


def _random_texts(rng: random.Random, n: int) -> list[str]:
    """Fragments of every case, shuffled with ordinary words and ids."""
    words = ["key", "token=", "secret:", "password", "=", ":", '"', "'", "\\n", " ", "-", "_", "://", "@",
             "[REDACTED]", "Bearer ", "AKIA", "sk-", "eyJ", "\n", "-----BEGIN RSA PRIVATE KEY-----"]
    words += [c[1][i:i + 12] for c in CASES for i in (0, 8, 20)]
    chars = string.ascii_letters + string.digits
    return ["".join(rng.choice(words) + ("".join(rng.choice(chars) for _ in range(rng.randint(0, 30)))
                                         if rng.random() < .4 else "")
                    for _ in range(rng.randint(1, 25))) for _ in range(n)]


def test_sql_and_python_agree_on_random_text():
    # Wherever the engines could part (overlaps, order, a marker next to a key), the
    # outputs must be equal.
    texts = _random_texts(_rng, 400)
    for text, (_, stored) in zip(texts, _sql(texts)):
        assert stored == redact(text), text


def _sql_matched(values: list[str | None]) -> list[tuple[bool, bool, str | None]]:
    """(hinted, matched by some pass, stored) per value, as the store's INSERT redacts."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    rows = con.execute(f"SELECT {sql_hinted('x')}, {sql_matched('x')}, CASE WHEN {sql_hinted('x')} AND "
                       f"{sql_matched('x')} THEN {sql_redact('x')} ELSE x END FROM t ORDER BY i").fetchall()
    con.close()
    return rows


def test_the_one_scan_of_every_pass_finds_every_secret_and_skips_only_what_the_chain_keeps():
    texts = [c[1] for c in CASES] + NEGATIVES + _random_texts(random.Random(13), 600)
    for text, (_, matched, stored) in zip(texts, _sql_matched(texts)):
        assert stored == redact(text), text
        assert matched or redact(text) == text, text
    assert all(matched for _, matched, _ in _sql_matched([c[1] for c in CASES]))


def test_hinted_words_without_a_secret_skip_the_chain():
    # A credential's name and its separator in ordinary text and code: the hint scan lets
    # them through, the one scan of every pass does not, so the 15 passes never run on them.
    texts = ["max_tokens: 1024, total_tokens=2048", '{"token": "Hello"}', "primary_key: user_id",
             "row = {key: value for key, value in pairs}"]
    assert [(h, m) for h, m, _ in _sql_matched(texts)] == [(True, False)] * len(texts)


#: Text that mentions a credential's words, or a secret's first letters, where no shape can
#: match: the pre-check must not let it through, or every column holding one such value
#: plans the whole chain and every such value is scanned by every pass.
NEAR_MISSES = [
    "the author's keyboard has a key for every token",
    "for key in sorted(keys): print(key)",
    "Authorization is needed; the bearer-of-bad-news pattern",
    # a web page as a browsing agent saw it: a public trial token under a camelCase name
    '{"SystemEntropyOriginTrialToken": "A5is4nwJJVnhaJpUr1URgj4vvAXSiHoK0VBbM9fawMskbDUj9WUREpa3"}',
    # base64 of JSON (image metadata, page state): "eyJ" without a JWT's second part
    '"state": "eyJ2ZXJzaW9uIjoxLCJwYWdlIjoiaG9tZSJ9"',
    # structured data in pages: "://" then an "@" key, no user:password
    '{"@context": "https://schema.org","@type": "Restaurant"}',
    '{\\"@context\\":\\"http://schema.org\\",\\"@type\\":\\"Organization\\"}',
    "mail alice@example.com, see https://example.com/@alice",
    "sk-short and the task-list",
]


def test_near_misses_are_not_hinted_in_either_engine():
    import re
    hint = re.compile(HINTS)
    assert [bool(hint.search(t)) for t in NEAR_MISSES] == [False] * len(NEAR_MISSES)
    assert [h for h, _ in _sql(NEAR_MISSES)] == [False] * len(NEAR_MISSES)
    assert [redact(t) for t in NEAR_MISSES] == NEAR_MISSES


def _named_texts(rng: random.Random, n: int) -> list[str]:
    """Credential names in every spelling the shapes take (camelCase, snake, kebab, dotted,
    quoted, JSON-escaped, upper case) with separators and values around them, shuffled
    with near-miss words."""
    names = ["api_key", "apiKey", "x-api-key", "secretKey", "client_secret", "clientSecret", "accessToken",
             "access-token", "authtoken", "AUTH_TOKEN", "refreshToken", "refresh_token", "private_key", "password",
             "PASSWD", "secret", "AccountKey", "SharedAccessKey", "azure_openai_key", "Ocp-Apim-Subscription-Key",
             "api-key", "aws_secret_access_key", "SecretAccessKey", "session_token", "webhook.signing-key",
             "MY_SERVICE_AUTH", "credentials", "auths", "tokens", "Authorization", "TrialToken", "keyboard",
             "author", "monkey", "Token", "sToken", "hToken", "passwords", "secrets"]
    seps = ["=", ":", ": ", " = ", '": "', "':'", '\\": \\"', "\t:\t", " ", "-", "_"]
    vals = [_rand(40, _B64), _rand(24), "hunter2x", "Hello", "1024", _rand(20, string.ascii_letters + "_-"),
            "Bearer " + _rand(30), "Token " + _rand(30), "basic " + _rand(12)]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts += [rng.choice(["", " ", '"', "{", "_", ".", "x", "\\", "'"]), rng.choice(names),
                      rng.choice(seps), rng.choice(vals)]
        out.append("".join(parts))
    return out


def test_the_precheck_never_skips_a_value_the_chain_would_change():
    # The hint is a pre-check only: a value without one must come out of the chain as it
    # went in, in Python and in SQL alike; otherwise a secret reaches the store.
    import re
    hint = re.compile(HINTS)
    texts = [c[1] for c in CASES] + NEGATIVES + NEAR_MISSES + _random_texts(random.Random(17), 600) \
        + _named_texts(random.Random(19), 1500)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    chained = [r[0] for r in con.execute(f"SELECT {sql_redact('x')} FROM t ORDER BY i").fetchall()]
    con.close()
    for text, (hinted, stored), whole in zip(texts, _sql(texts), chained):
        assert hinted == bool(hint.search(text)), text
        if not hinted:
            assert redact(text) == text and whole == text, text
        assert stored == redact(text) == whole, text


def test_high_entropy_test():
    assert high_entropy("Zx8f3K2pQ9wLmN4vR7tY")
    assert not high_entropy("a1a1a1a1a1a1a1a1a1")                    # few distinct characters
    assert not high_entropy(hashlib.md5(b"z").hexdigest())             # a digest names a thing
    assert not high_entropy(str(uuid.UUID(int=99)))
    assert not high_entropy("messages_0_content")                      # no digit run to speak of: has 0…
    assert not high_entropy("short1A")
