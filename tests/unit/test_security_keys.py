"""安全密钥 (WebAuthn): registration and assertion against a software authenticator (invariants 3, 8, 11)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from portal.models import Enrollment, SecurityKey, utcnow
from portal.services import security_keys, sessions
from portal.services.errors import Conflict, Expired, InvalidCode, InvalidInput, NotAllowed
from tests.support.webauthn_authenticator import RefusedByAuthenticator, SoftAuthenticator, b64url
from tests.unit.conftest import run_threads

ORIGIN = "http://localhost:8000"
pytestmark = pytest.mark.config(PUBLIC_URL=ORIGIN)


def _other_session(user, client):
    return sessions.resolve(sessions.start(user, sessions.FULL, client))


def _register(session, user, authenticator=None, name="YubiKey 5") -> tuple[SoftAuthenticator, SecurityKey]:
    authenticator = authenticator or SoftAuthenticator()
    options = security_keys.registration_options(session, user)
    fields = security_keys.finish_registration(session, user, authenticator.create(options, ORIGIN), name)
    return authenticator, security_keys.add_key(user, fields)


def _assertion(session, user, authenticator, purpose="login", **kwargs) -> str:
    return authenticator.get(security_keys.authentication_options(session, user, purpose), ORIGIN, **kwargs)


# --- configuration ------------------------------------------------------------------------------


def test_rp_id_and_origin_come_from_the_public_url(ctx):
    assert (security_keys.rp_id(), security_keys.origin()) == ("localhost", ORIGIN)
    assert security_keys.unavailable_reason() is None
    ctx.config["PUBLIC_URL"] = "https://Mail.XAMD.edu.cn:443/portal/"
    assert (security_keys.rp_id(), security_keys.origin()) == ("mail.xamd.edu.cn", "https://mail.xamd.edu.cn")
    assert security_keys.unavailable_reason() is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "https://10.0.0.5", "https://[::1]:8443"])
def test_an_ip_address_public_url_makes_the_method_unavailable(ctx, user, full_session, url):
    ctx.config["PUBLIC_URL"] = url
    assert security_keys.unavailable_reason() == security_keys.IP_ADDRESS
    with pytest.raises(NotAllowed) as refused:
        security_keys.registration_options(full_session, user)
    assert refused.value.code == "webauthn_unavailable"
    assert not Enrollment.select().exists()


def test_plain_http_is_unavailable_outside_localhost(ctx):
    ctx.config["PUBLIC_URL"] = "http://mail.xamd.edu.cn"
    assert "https" in security_keys.unavailable_reason()


# --- registration -------------------------------------------------------------------------------


def test_registration_options_follow_the_design(ctx, user, full_session):
    _, first = _register(full_session, user)
    options = json.loads(security_keys.registration_options(full_session, user, purpose="rebind"))
    assert options["rp"] == {"id": "localhost", "name": ctx.config["ORG_NAME"]}
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert options["excludeCredentials"] == [
        {"id": first.credential_id, "type": "public-key", "transports": ["usb", "nfc"]}
    ]
    assert user.account not in options["user"]["id"] and options["user"]["name"] == user.account
    stored = Enrollment.get((Enrollment.method == "webauthn") & (Enrollment.purpose == "rebind"))
    assert stored.secret == options["challenge"]
    assert timedelta(minutes=4) < stored.expires_at - utcnow() <= timedelta(minutes=5)


def test_register_then_authenticate(ctx, user, full_session):
    authenticator, key = _register(full_session, user)
    assert key.credential_id == b64url(authenticator.credential_id)
    assert (key.name, key.transports, key.sign_count, key.aaguid) == (
        "YubiKey 5",
        "usb,nfc",
        0,
        "00000000-0000-0000-0000-000000000000",
    )
    assert security_keys.keys_of(user) == [key]

    used = security_keys.verify_assertion(full_session, user, _assertion(full_session, user, authenticator), "login")
    assert used.id == key.id and used.sign_count == 1 and used.last_used_at is not None
    assert not Enrollment.select().exists()  # every challenge was used up


def test_a_new_challenge_replaces_the_sessions_earlier_one(ctx, user, full_session):
    security_keys.registration_options(full_session, user)
    options = security_keys.registration_options(full_session, user)
    assert Enrollment.select().count() == 1
    fields = security_keys.finish_registration(full_session, user, SoftAuthenticator().create(options, ORIGIN), "")
    assert fields["purpose"] == "bind" and fields["name"] == "安全密钥 1"


def test_a_replayed_registration_is_refused(ctx, user, full_session):
    authenticator = SoftAuthenticator()
    credential = authenticator.create(security_keys.registration_options(full_session, user), ORIGIN)
    security_keys.add_key(user, security_keys.finish_registration(full_session, user, credential, "a"))
    with pytest.raises(Expired) as replay:
        security_keys.finish_registration(full_session, user, credential, "a")
    assert replay.value.code == "webauthn_expired"
    security_keys.registration_options(full_session, user)  # a fresh challenge does not revive it
    with pytest.raises(InvalidCode) as replay:
        security_keys.finish_registration(full_session, user, credential, "a")
    assert replay.value.code == "webauthn_failed"
    assert SecurityKey.select().count() == 1


def test_the_challenge_of_another_session_is_refused(ctx, user, full_session, client):
    other = _other_session(user, client)
    credential = SoftAuthenticator().create(security_keys.registration_options(full_session, user), ORIGIN)
    with pytest.raises(Expired):
        security_keys.finish_registration(other, user, credential, "")  # the other session has none
    security_keys.registration_options(other, user)
    with pytest.raises(InvalidCode):
        security_keys.finish_registration(other, user, credential, "")  # …nor this one
    assert not SecurityKey.select().exists()


@pytest.mark.parametrize(
    ("origin", "rp_id"), [("https://evil.example", None), ("http://localhost:8001", None), (ORIGIN, "evil.example")]
)
def test_a_wrong_origin_or_rp_id_is_refused(ctx, user, full_session, origin, rp_id):
    options = security_keys.registration_options(full_session, user)
    with pytest.raises(InvalidCode) as refused:
        security_keys.finish_registration(full_session, user, SoftAuthenticator().create(options, origin, rp_id), "")
    assert refused.value.code == "webauthn_failed"
    authenticator, _ = _register(full_session, user)
    options = security_keys.authentication_options(full_session, user, "login")
    with pytest.raises(InvalidCode) as refused:
        security_keys.verify_assertion(full_session, user, authenticator.get(options, origin, rp_id), "login")
    assert refused.value.code == "webauthn_failed"


def test_at_most_ten_keys(ctx, user, full_session):
    for _ in range(security_keys.MAX_KEYS):
        _register(full_session, user, name="")
    names = [key.name for key in security_keys.keys_of(user)]
    assert names == [f"安全密钥 {n}" for n in range(1, 11)]
    with pytest.raises(Conflict) as refused:
        security_keys.registration_options(full_session, user)
    assert refused.value.code == "webauthn_too_many"
    security_keys.remove_key(user, security_keys.keys_of(user)[0].id)
    options = security_keys.registration_options(full_session, user)
    fields = security_keys.finish_registration(full_session, user, SoftAuthenticator().create(options, ORIGIN), " ")
    assert fields["name"] == "安全密钥 1"  # the free number
    security_keys.add_key(user, fields)
    with pytest.raises(Conflict):  # an 11th that was verified before the 10th was stored
        security_keys.add_key(user, {**fields, "credential_id": "another-credential-id"})
    assert SecurityKey.select().count() == security_keys.MAX_KEYS


def test_a_duplicate_credential_is_refused(ctx, user, full_session, client):
    authenticator, _ = _register(full_session, user)
    options = json.loads(security_keys.registration_options(full_session, user))
    options["excludeCredentials"] = []  # an authenticator that ignores excludeCredentials
    with pytest.raises(Conflict) as refused:
        security_keys.finish_registration(full_session, user, authenticator.create(json.dumps(options), ORIGIN), "")
    assert refused.value.code == "webauthn_duplicate"
    with pytest.raises(RefusedByAuthenticator):  # what a real authenticator does with the options as sent
        authenticator.create(security_keys.registration_options(full_session, user), ORIGIN)
    assert SecurityKey.select().count() == 1


@pytest.mark.parametrize("name", ["x" * 33, "a\u202eb"])
def test_a_bad_name_is_refused_before_the_challenge_is_used(ctx, user, full_session, name):
    credential = SoftAuthenticator().create(security_keys.registration_options(full_session, user), ORIGIN)
    with pytest.raises(InvalidInput):
        security_keys.finish_registration(full_session, user, credential, name)
    fields = security_keys.finish_registration(full_session, user, credential, "  " + "x" * 32 + " ")
    assert fields["name"] == "x" * 32


# --- authentication -----------------------------------------------------------------------------


def test_authentication_options_name_the_users_keys(ctx, user, full_session):
    _, key = _register(full_session, user)
    options = json.loads(security_keys.authentication_options(full_session, user, "verify"))
    assert options["rpId"] == "localhost" and options["userVerification"] == "preferred"
    assert options["allowCredentials"] == [
        {"id": key.credential_id, "type": "public-key", "transports": ["usb", "nfc"]}
    ]
    assert Enrollment.get(Enrollment.purpose == "verify").secret == options["challenge"]


def test_a_replayed_assertion_is_refused(ctx, user, full_session):
    authenticator, _ = _register(full_session, user)
    assertion = _assertion(full_session, user, authenticator)
    security_keys.verify_assertion(full_session, user, assertion, "login")
    with pytest.raises(Expired):
        security_keys.verify_assertion(full_session, user, assertion, "login")
    security_keys.authentication_options(full_session, user, "login")
    with pytest.raises(InvalidCode) as replay:
        security_keys.verify_assertion(full_session, user, assertion, "login")
    assert replay.value.code == "webauthn_failed"


def test_an_assertion_is_bound_to_its_session_purpose_and_user(ctx, user, full_session, client):
    from portal.services import accounts

    authenticator, _ = _register(full_session, user)
    assertion = _assertion(full_session, user, authenticator, purpose="login")
    with pytest.raises(Expired):
        security_keys.verify_assertion(_other_session(user, client), user, assertion, "login")
    with pytest.raises(Expired):
        security_keys.verify_assertion(full_session, user, assertion, "verify")
    bob = accounts.create("bob@mail.xamd.edu.cn", "Correct-horse-9")
    bob_session = _other_session(bob, client)
    _register(bob_session, bob)
    options = json.loads(security_keys.authentication_options(bob_session, bob, "login"))
    options["allowCredentials"] = []  # a client that offers alice's key anyway
    with pytest.raises(InvalidCode) as refused:  # alice's key is not one of bob's
        security_keys.verify_assertion(bob_session, bob, authenticator.get(json.dumps(options), ORIGIN), "login")
    assert refused.value.code == "webauthn_unknown_key"
    security_keys.verify_assertion(full_session, user, assertion, "login")  # still good where it belongs


def test_an_expired_challenge_is_refused(ctx, user, full_session):
    authenticator, _ = _register(full_session, user)
    assertion = _assertion(full_session, user, authenticator)
    Enrollment.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    with pytest.raises(Expired):
        security_keys.verify_assertion(full_session, user, assertion, "login")


def test_a_counter_going_backwards_is_refused_as_a_cloned_key(ctx, user, full_session):
    authenticator, key = _register(full_session, user)
    assertion = _assertion(full_session, user, authenticator, sign_count=5)
    security_keys.verify_assertion(full_session, user, assertion, "login")
    for count in (5, 4):
        assertion = _assertion(full_session, user, authenticator, sign_count=count)
        with pytest.raises(InvalidCode) as refused:
            security_keys.verify_assertion(full_session, user, assertion, "login")
        assert refused.value.code == "webauthn_cloned"
    assert SecurityKey.get_by_id(key.id).sign_count == 5
    assertion = _assertion(full_session, user, authenticator, sign_count=6)
    assert security_keys.verify_assertion(full_session, user, assertion, "login").sign_count == 6


def test_keys_that_always_count_zero_pass_on_their_challenge(ctx, user, full_session):
    authenticator, key = _register(full_session, user)
    for _ in range(2):
        assertion = _assertion(full_session, user, authenticator, sign_count=0)
        assert security_keys.verify_assertion(full_session, user, assertion, "login").sign_count == 0
    assertion = _assertion(full_session, user, authenticator, sign_count=3)
    security_keys.verify_assertion(full_session, user, assertion, "login")
    assertion = _assertion(full_session, user, authenticator, sign_count=0)
    with pytest.raises(InvalidCode) as refused:  # once counting, back to 0 is going backwards
        security_keys.verify_assertion(full_session, user, assertion, "login")
    assert refused.value.code == "webauthn_cloned"


def test_the_counter_update_passes_once(ctx, user, full_session):
    _, key = _register(full_session, user)
    assert security_keys.claim_counter(key, 7) is True
    assert security_keys.claim_counter(key, 7) is False
    assert security_keys.claim_counter(key, 6) is False
    assert SecurityKey.get_by_id(key.id).sign_count == 7


def test_parallel_uses_of_one_assertion_pass_at_most_once(app, ctx, user, full_session):
    authenticator, key = _register(full_session, user)
    assertion = _assertion(full_session, user, authenticator)

    results = run_threads(app, 4, lambda _i: security_keys.verify_assertion(full_session, user, assertion, "login"))
    passed = [value for kind, value in results if kind == "ok"]
    refused = [value for kind, value in results if kind == "error"]
    assert len(passed) == 1, results
    assert all(isinstance(exc, (Expired, InvalidCode)) for exc in refused), results
    assert SecurityKey.get_by_id(key.id).sign_count == 1


# --- bad input ----------------------------------------------------------------------------------


BAD_CREDENTIALS = [
    "",
    "not json",
    "[]",
    "null",
    '{"id": "x"}',
    '{"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}}',
    '{"id": "@@", "rawId": "@@@", "type": "public-key", "response": {"clientDataJSON": "%%"}}',
    "x" * 100_000,
]


@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
def test_malformed_registration_input_is_an_invalid_code(ctx, user, full_session, credential):
    security_keys.registration_options(full_session, user)
    with pytest.raises(InvalidCode):
        security_keys.finish_registration(full_session, user, credential, "")
    assert not SecurityKey.select().exists()


@pytest.mark.parametrize("credential", [*BAD_CREDENTIALS, None])
def test_malformed_assertion_input_is_an_invalid_code(ctx, user, full_session, credential):
    _register(full_session, user)
    security_keys.authentication_options(full_session, user, "login")
    with pytest.raises(InvalidCode):
        security_keys.verify_assertion(full_session, user, credential, "login")


def test_a_tampered_assertion_is_refused(ctx, user, full_session):
    authenticator, key = _register(full_session, user)
    data = json.loads(_assertion(full_session, user, authenticator))
    data["response"]["signature"] = b64url(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    with pytest.raises(InvalidCode) as refused:
        security_keys.verify_assertion(full_session, user, json.dumps(data), "login")
    assert refused.value.code == "webauthn_failed"
    assert SecurityKey.get_by_id(key.id).last_used_at is None


def test_removing_a_key(ctx, user, full_session, client):
    from portal.services import accounts

    _, key = _register(full_session, user)
    bob = accounts.create("bob@mail.xamd.edu.cn", "Correct-horse-9")
    assert security_keys.remove_key(bob, key.id) is None
    assert security_keys.remove_key(user, key.id).id == key.id
    assert security_keys.remove_key(user, key.id) is None
    assert security_keys.keys_of(user) == []
