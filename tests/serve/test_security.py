"""Bearer token (constant-time comparison, CNNKIT_TOKEN), and the warning when binding beyond this machine."""
from __future__ import annotations

import pytest

from cnnkit.serve.limits import Rejected
from cnnkit.serve.security import bind_warning, check_bearer, resolve_token


def test_token_from_flag_then_environment(monkeypatch):
    monkeypatch.delenv("CNNKIT_TOKEN", raising=False)
    assert resolve_token(None) is None
    monkeypatch.setenv("CNNKIT_TOKEN", "from-env")
    assert resolve_token(None) == "from-env" and resolve_token("flag") == "flag"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", "Basic s3cret", "bearer s3cre", "s3cret"])
def test_bad_headers_are_401(header):
    with pytest.raises(Rejected) as e:
        check_bearer(header, "s3cret")
    assert e.value.status == 401 and e.value.headers == {"WWW-Authenticate": "Bearer"}


def test_right_header_or_no_token_passes():
    check_bearer("Bearer s3cret", "s3cret")
    check_bearer("bearer s3cret", "s3cret")
    check_bearer(None, None)


def test_bind_warning_only_beyond_localhost_without_token():
    assert bind_warning("127.0.0.1", None) is None and bind_warning("::1", None) is None
    assert bind_warning("localhost", None) is None and bind_warning("127.0.0.2", None) is None
    assert bind_warning("0.0.0.0", "t") is None
    text = bind_warning("0.0.0.0", None)
    assert "0.0.0.0" in text and "--token" in text and "CNNKIT_TOKEN" in text
