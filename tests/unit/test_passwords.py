# -*- coding: utf-8 -*-
"""Client-side password hashing: SCRAM-SHA-256, md5, mysql_native_password, caching_sha2_password."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _passwords as pw


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def test_scram_rfc7677_exchange_vector():
    """RFC 7677 section 3: user 'user', password 'pencil'; our keys must produce its proof and signature."""
    salt = base64.b64decode('W22ZaJ0SNY7soEsUEjb6gQ==')
    salted, stored_key, server_key = pw.scram_keys('pencil', salt, 4096)
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    assert hashlib.sha256(client_key).digest() == stored_key
    auth_message = (b'n=user,r=rOprNGfwEbeRWgbNEkqO,'
                    b'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,'
                    b'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0')
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    assert _b64(proof) == 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert _b64(server_signature) == '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='


def test_scram_verifier_format_and_check():
    verifier = pw.scram_sha256_verifier('s3cret!')
    iterations, salt, stored_key, server_key = pw.parse_scram_verifier(verifier)
    assert verifier.startswith('SCRAM-SHA-256$4096:')
    assert iterations == 4096 and len(salt) == 16 and len(stored_key) == 32 and len(server_key) == 32
    assert pw.postgres_password_matches('s3cret!', verifier, 'alice') is True
    assert pw.postgres_password_matches('s3cret?', verifier, 'alice') is False
    # a fresh salt every time, yet both verify
    other = pw.scram_sha256_verifier('s3cret!')
    assert other != verifier
    assert pw.postgres_password_matches('s3cret!', other, 'alice') is True


def test_scram_fixed_salt_is_deterministic_and_iterations_kept():
    one = pw.scram_sha256_verifier('pencil', salt=b'0123456789abcdef', iterations=10000)
    two = pw.scram_sha256_verifier('pencil', salt=b'0123456789abcdef', iterations=10000)
    assert one == two
    assert one.startswith('SCRAM-SHA-256$10000:' + _b64(b'0123456789abcdef') + '$')
    assert pw.postgres_password_matches('pencil', one, 'x')


def test_saslprep_maps_spaces_and_normalizes():
    assert pw.saslprep('plain ascii') == 'plain ascii'
    assert pw.saslprep('a\u00a0b') == 'a b'          # non-ASCII space -> space
    assert pw.saslprep('a\u00adb') == 'ab'            # soft hyphen: mapped to nothing
    assert pw.saslprep('\u2168') == 'IX'              # NFKC
    assert pw.saslprep('a\u0007b\u00e9') == 'a\u0007b\u00e9'  # prohibited control char: used as is


def test_scram_verifier_with_keys_of_another_length_is_not_a_verifier():
    # PostgreSQL stores such a string as if it were the plaintext password
    good = pw.scram_sha256_verifier('pencil', salt=b'0123456789abcdef')
    head, keys = good.rsplit('$', 1)
    stored, server = keys.split(':')
    short = '%s$%s:%s' % (head, _b64(base64.b64decode(stored)[:31]), server)
    assert pw.is_postgres_hash(good)
    assert not pw.is_postgres_hash('SCRAM-SHA-256$4096:AAAA$BBBB:CCCC')
    assert not pw.is_postgres_hash(short)
    assert pw.parse_scram_verifier(short) is None


def test_md5_postgres_format():
    stored = pw.postgres_md5_hash('secret', 'bob')
    assert stored == 'md5' + hashlib.md5(b'secretbob').hexdigest()
    assert pw.postgres_password_matches('secret', stored, 'bob') is True
    assert pw.postgres_password_matches('secret', stored, 'carol') is False
    assert pw.postgres_password_matches('secret', 'SCRAM-garbage', 'bob') is None
    assert pw.is_postgres_hash(stored) and not pw.is_postgres_hash('secret')


def test_mysql_native_known_vector():
    # SELECT PASSWORD('password') on MariaDB/MySQL 5.7
    assert pw.mysql_native_hash('password') == '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'
    assert pw.is_mysql_native_hash('*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19')
    assert not pw.is_mysql_native_hash('*2470c0')


@pytest.mark.parametrize('password,salt', [
    ('Hello world!', 'saltstring'),
    ('secret', 'abcdefgh'),
    ('a much longer password that spans beyond thirty-two bytes of key', 'ssssssssssssssss'),
    ('p', 'x'),
])
def test_sha256_crypt_matches_openssl(password, salt):
    """The SHA-256 crypt core agrees with an independent implementation (openssl passwd -5)."""
    out = subprocess.run(['openssl', 'passwd', '-5', '-salt', salt, password],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == '$5$%s$%s' % (salt, pw.sha256_crypt_digest(password.encode(), salt.encode(), 5000))


def test_sha256_crypt_drepper_vector():
    # Drepper's SHA-crypt specification, first SHA-256 example
    assert pw.sha256_crypt_digest(b'Hello world!', b'saltstring', 5000) == \
        '5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5'


@pytest.mark.parametrize('password,hashcat', [
    # hashcat mode 7401 example hash (password 'hashcat')
    ('hashcat', '$mysql$A$005*F9CC98CE08892924F50A213B6BC571A2C11778C5*'
                '625479393559393965414D45316477456B484F41316E64484742577A2E3162785353526B7554584647562F'),
    # a published MySQL 8 hash of 'password'
    ('password', '$mysql$A$005*06437A150142644D74187A6A2F0D7971094F2575*'
                 '48667A67485366745A304F6A487A73704250663465337A7530325157687A51364A384D737554424939702E'),
])
def test_caching_sha2_known_vectors(password, hashcat):
    _, _, rest = hashcat.partition('$A$005*')
    salt_hex, digest_hex = rest.split('*')
    stored = b'$A$005$' + bytes.fromhex(salt_hex) + bytes.fromhex(digest_hex)
    assert pw.caching_sha2_matches(password, stored) is True
    assert pw.caching_sha2_matches(password + 'x', stored) is False
    assert pw.caching_sha2_hash(password, salt=bytes.fromhex(salt_hex)) == stored


def test_caching_sha2_new_hash_roundtrip_and_format():
    stored = pw.caching_sha2_hash('n3w-pass')
    assert stored.startswith(b'$A$005$') and len(stored) == 70
    rounds, salt, digest = pw.parse_caching_sha2(stored)
    assert rounds == 5000 and len(salt) == 20 and len(digest) == 43
    assert all(0 < b < 128 and b != ord('$') for b in salt)
    assert pw.caching_sha2_matches('n3w-pass', stored.decode('ascii'))
    assert pw.caching_sha2_matches('n3w-pass', '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19') is None
    ten = pw.caching_sha2_hash('n3w-pass', salt=salt, rounds=10000)
    assert ten.startswith(b'$A$00A$') and pw.parse_caching_sha2(ten)[0] == 10000
    assert pw.caching_sha2_matches('n3w-pass', ten)
    with pytest.raises(ValueError):
        pw.caching_sha2_hash('x', salt=b'short')
