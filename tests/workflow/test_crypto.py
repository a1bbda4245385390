"""Identity encryption: round trip, fresh token each time, wrong key gives a placeholder, not a crash."""

from __future__ import annotations

from cryptography.fernet import Fernet

from osteoplan.workflow import crypto


def test_encrypt_round_trip_and_wrong_key(monkeypatch):
    t1, t2 = crypto.encrypt("Dupont"), crypto.encrypt("Dupont")
    assert t1 != t2 and "Dupont" not in t1  # random IV: equal names do not give equal tokens
    assert crypto.decrypt(t1) == "Dupont" and crypto.encrypt(None) is None
    monkeypatch.setenv("OSTEOPLAN_IDENTITY_KEY", Fernet.generate_key().decode())
    assert crypto.decrypt(t1) == crypto.UNREADABLE


def test_key_file_created_private(monkeypatch, tmp_path):
    monkeypatch.delenv("OSTEOPLAN_IDENTITY_KEY", raising=False)
    key_file = tmp_path / "k" / "identity.key"
    monkeypatch.setenv("OSTEOPLAN_IDENTITY_KEY_FILE", str(key_file))
    token = crypto.encrypt("Jeanne")
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    assert Fernet(key_file.read_bytes()).decrypt(token.encode()) == b"Jeanne"
