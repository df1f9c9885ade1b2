# -*- coding: utf-8 -*-
"""Streaming AES-256-GCM: round trips, wrong keys, tampering and truncation are caught."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _backup_crypto as crypto
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


@pytest.fixture
def fast_kdf(monkeypatch):
    monkeypatch.setattr(crypto, 'SCRYPT_N', 2 ** 10)


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


@pytest.mark.parametrize('size', [0, 1, crypto.CHUNK - 1, crypto.CHUNK, crypto.CHUNK + 1, 3 * crypto.CHUNK + 17])
def test_round_trip_across_chunk_boundaries(tmp_path, fast_kdf, size):
    record, key = crypto.encryption_record('passphrase')
    data = os.urandom(size)
    plain, sealed, back = tmp_path / 'p', tmp_path / 'c', tmp_path / 'b'
    _write(plain, data)
    crypto.encrypt_file(str(plain), str(sealed), key)
    crypto.decrypt_file(str(sealed), str(back), crypto.key_for(record, 'passphrase'))
    assert back.read_bytes() == data
    assert sealed.read_bytes()[:8] == crypto.MAGIC


def test_ciphertext_does_not_contain_plaintext(tmp_path, fast_kdf):
    _record, key = crypto.encryption_record('k')
    plain, sealed = tmp_path / 'p', tmp_path / 'c'
    _write(plain, b'MARKER-123 ' * 10000)
    crypto.encrypt_file(str(plain), str(sealed), key)
    assert b'MARKER-123' not in sealed.read_bytes()


def test_record_never_holds_the_key_and_wrong_key_is_refused(fast_kdf):
    record, key = crypto.encryption_record('right key')
    assert 'right key' not in repr(record) and key.hex() not in repr(record)
    assert record['algorithm'] == 'AES-256-GCM' and record['salt']
    with pytest.raises(DbError) as info:
        crypto.key_for(record, 'wrong key', 'B1')
    assert 'wrong encryption key' in str(info.value)
    with pytest.raises(DbError):
        crypto.key_for(record, None, 'B1')


def test_same_passphrase_different_salt_gives_different_keys(fast_kdf):
    (_r1, k1), (_r2, k2) = crypto.encryption_record('same'), crypto.encryption_record('same')
    assert k1 != k2


def _sealed(tmp_path, size=2 * crypto.CHUNK + 5):
    _record, key = crypto.encryption_record('k')
    plain, sealed = tmp_path / 'p', tmp_path / 'c'
    _write(plain, os.urandom(size))
    crypto.encrypt_file(str(plain), str(sealed), key)
    return key, sealed


def test_flipped_byte_names_the_file(tmp_path, fast_kdf):
    key, sealed = _sealed(tmp_path)
    raw = bytearray(sealed.read_bytes())
    raw[crypto.CHUNK + 100] ^= 0x01
    sealed.write_bytes(bytes(raw))
    with pytest.raises(DbError) as info:
        crypto.decrypt_file(str(sealed), str(tmp_path / 'out'), key, name='B1/data/x.dat')
    assert 'B1/data/x.dat' in str(info.value) and 'chunk 1' in str(info.value)


def test_truncation_at_a_chunk_boundary_is_detected(tmp_path, fast_kdf):
    key, sealed = _sealed(tmp_path)
    raw = sealed.read_bytes()
    # header + first full chunk only: every remaining chunk dropped
    first_len = int.from_bytes(raw[16:20], 'big')
    sealed.write_bytes(raw[:20 + first_len])
    with pytest.raises(DbError) as info:
        crypto.decrypt_file(str(sealed), str(tmp_path / 'out'), key)
    assert 'truncated' in str(info.value)


def test_reordered_chunks_are_detected(tmp_path, fast_kdf):
    key, sealed = _sealed(tmp_path, size=3 * crypto.CHUNK)
    raw = sealed.read_bytes()
    header, body = raw[:16], raw[16:]
    size = 4 + crypto.CHUNK + 16
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    sealed.write_bytes(header + chunks[1] + chunks[0] + b''.join(chunks[2:]))
    with pytest.raises(DbError):
        crypto.decrypt_file(str(sealed), str(tmp_path / 'out'), key)
