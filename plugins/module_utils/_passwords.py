# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: password hashing done on the client, so no plaintext reaches a server.

Pure functions, no database access:

- PostgreSQL SCRAM-SHA-256 verifiers (RFC 5802 / RFC 7677, PostgreSQL's storage format)
  and the legacy ``md5`` format, built and checked against a stored value;
- MySQL/MariaDB ``mysql_native_password`` (``*`` + hex SHA1(SHA1(password)));
- MySQL 8 ``caching_sha2_password`` (``$A$<rounds/1000 in hex>$<20-byte salt><43-char digest>``,
  the SHA-256 crypt algorithm with the account's stored salt).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stringprep
import unicodedata

SCRAM_DEFAULT_ITERATIONS = 4096
SCRAM_SALT_BYTES = 16
SCRAM_KEY_BYTES = 32  # SHA-256: a verifier whose keys have another length is taken by the server as a plaintext
SCRAM_RE = re.compile(r'^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$')
MD5_RE = re.compile(r'^md5[0-9a-f]{32}$')
NATIVE_RE = re.compile(r'^\*[0-9A-F]{40}$')
ED25519_RE = re.compile(r'^[A-Za-z0-9+/]{43}$')  # MariaDB ed25519: the public key, base64 without padding
HEX_LITERAL_RE = re.compile(r'^0[xX]')
CACHING_SHA2_PREFIX = '$A$'
CACHING_SHA2_SALT_BYTES = 20
CACHING_SHA2_DIGEST_CHARS = 43
CACHING_SHA2_DEFAULT_ROUNDS = 5000
CACHING_SHA2_ROUND_MULTIPLIER = 1000
CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'


# ---- PostgreSQL ---------------------------------------------------------------------

def _prohibited(char):
    return (stringprep.in_table_c12(char) or stringprep.in_table_c21_c22(char)
            or stringprep.in_table_c3(char) or stringprep.in_table_c4(char)
            or stringprep.in_table_c5(char) or stringprep.in_table_c6(char)
            or stringprep.in_table_c7(char) or stringprep.in_table_c8(char)
            or stringprep.in_table_c9(char) or stringprep.in_table_a1(char))


def saslprep(password):
    """SASLprep (RFC 4013) the way PostgreSQL applies it to a SCRAM password.

    ASCII passwords are unchanged; a password SASLprep refuses is used as is, as the
    server does, so the verifier still matches what a client sends.
    """
    if all(ord(c) < 128 for c in password):
        return password
    mapped = ''.join(' ' if stringprep.in_table_c12(c) else c
                     for c in password if not stringprep.in_table_b1(c))
    normalized = unicodedata.normalize('NFKC', mapped)
    if not normalized or any(_prohibited(c) for c in normalized):
        return password
    has_ral = any(stringprep.in_table_d1(c) for c in normalized)
    if has_ral:
        if any(stringprep.in_table_d2(c) for c in normalized):
            return password
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            return password
    return normalized


def scram_keys(password, salt, iterations):
    """(SaltedPassword, StoredKey, ServerKey) for a password, as bytes."""
    salted = hashlib.pbkdf2_hmac('sha256', saslprep(password).encode('utf-8'), salt, iterations)
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    return salted, stored_key, server_key


def scram_sha256_verifier(password, salt=None, iterations=SCRAM_DEFAULT_ITERATIONS):
    """The verifier PostgreSQL stores in pg_authid.rolpassword for this password."""
    if salt is None:
        salt = os.urandom(SCRAM_SALT_BYTES)
    if iterations < 1:
        raise ValueError('SCRAM iterations must be positive')
    _salted, stored_key, server_key = scram_keys(password, salt, iterations)
    b64 = base64.b64encode
    parts = (iterations, b64(salt).decode('ascii'), b64(stored_key).decode('ascii'), b64(server_key).decode('ascii'))
    return 'SCRAM-SHA-256$%d:%s$%s:%s' % parts


def parse_scram_verifier(verifier):
    """(iterations, salt, stored_key, server_key) or None when not a SCRAM-SHA-256 verifier."""
    match = SCRAM_RE.match(verifier or '')
    if not match:
        return None
    try:
        parsed = (int(match.group(1)), base64.b64decode(match.group(2), validate=True),
                  base64.b64decode(match.group(3), validate=True), base64.b64decode(match.group(4), validate=True))
    except (ValueError, TypeError):
        return None
    if len(parsed[2]) != SCRAM_KEY_BYTES or len(parsed[3]) != SCRAM_KEY_BYTES:
        return None
    return parsed


def postgres_md5_hash(password, username):
    return 'md5' + hashlib.md5((password + username).encode('utf-8')).hexdigest()  # nosec - PostgreSQL's format


def postgres_password_matches(password, stored, username):
    """True when ``password`` is the one behind the stored rolpassword (SCRAM or md5).

    None when the stored value is in a format we cannot check (the caller decides).
    """
    if stored is None:
        return False
    parsed = parse_scram_verifier(stored)
    if parsed is not None:
        iterations, salt, stored_key, server_key = parsed
        _salted, mine_stored, mine_server = scram_keys(password, salt, iterations)
        return hmac.compare_digest(mine_stored, stored_key) and hmac.compare_digest(mine_server, server_key)
    if MD5_RE.match(stored):
        return hmac.compare_digest(postgres_md5_hash(password, username), stored)
    return None


def is_postgres_hash(value):
    return bool(value) and (parse_scram_verifier(value) is not None or bool(MD5_RE.match(value)))


# ---- MySQL family --------------------------------------------------------------------

def mysql_native_hash(password):
    """mysql_native_password: '*' + upper hex SHA1(SHA1(password))."""
    inner = hashlib.sha1(password.encode('utf-8')).digest()  # nosec - the protocol's own hash
    return '*' + hashlib.sha1(inner).hexdigest().upper()  # nosec


def is_mysql_native_hash(value):
    return bool(value) and bool(NATIVE_RE.match(value))


def is_mariadb_ed25519_hash(value):
    return bool(value) and bool(ED25519_RE.match(value))


def decode_hex_hash(value):
    """A hash written as a 0x... hex literal (SHOW CREATE USER with print_identified_with_as_hex, mysqldump
    --hex-blob) as the string the server stores (bytes as latin-1, as a caching_sha2 salt is raw bytes).

    Other values are returned as they are; a 0x value that is not an even number of hex digits raises
    ValueError (its text is never in the message: it is a secret).
    """
    if not isinstance(value, str) or not HEX_LITERAL_RE.match(value):
        return value
    digits = value[2:]
    if not digits or len(digits) % 2 or not re.match(r'^[0-9A-Fa-f]+$', digits):
        raise ValueError('a 0x password_hash must be followed by an even number of hex digits (%d characters '
                         'after 0x here)' % len(digits))
    return bytes.fromhex(digits).decode('latin-1')


def _crypt_b64(b2, b1, b0, count):
    word = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(count):
        out.append(CRYPT_ALPHABET[word & 0x3f])
        word >>= 6
    return ''.join(out)


_SHA256_CRYPT_ORDER = ((0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
                       (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29))


def _repeat_to(block, length):
    return (block * (length // len(block) + 1))[:length]


def sha256_crypt_digest(key, salt, rounds):
    """The 43-character SHA-256 crypt digest (Drepper's algorithm) of bytes key and salt."""
    digest_b = hashlib.sha256(key + salt + key).digest()
    ctx = hashlib.sha256(key + salt)
    ctx.update(_repeat_to(digest_b, len(key)))
    length = len(key)
    while length:
        ctx.update(digest_b if length & 1 else key)
        length >>= 1
    digest_a = ctx.digest()
    p_bytes = _repeat_to(hashlib.sha256(key * len(key)).digest(), len(key)) if key else b''
    s_bytes = _repeat_to(hashlib.sha256(salt * (16 + digest_a[0])).digest(), len(salt)) if salt else b''
    current = digest_a
    for i in range(rounds):
        ctx = hashlib.sha256(p_bytes if i & 1 else current)
        if i % 3:
            ctx.update(s_bytes)
        if i % 7:
            ctx.update(p_bytes)
        ctx.update(current if i & 1 else p_bytes)
        current = ctx.digest()
    out = ''.join(_crypt_b64(current[a], current[b], current[c], 4) for a, b, c in _SHA256_CRYPT_ORDER)
    return out + _crypt_b64(0, current[31], current[30], 3)


def caching_sha2_hash(password, salt=None, rounds=CACHING_SHA2_DEFAULT_ROUNDS):
    """A MySQL 8 caching_sha2_password authentication_string (as bytes, the salt is raw).

    ``salt`` is 20 bytes; a new one follows the server's rule (7-bit, never NUL or '$').
    """
    if salt is None:
        salt = bytes(_salt_byte(b) for b in os.urandom(CACHING_SHA2_SALT_BYTES))
    if len(salt) != CACHING_SHA2_SALT_BYTES:
        raise ValueError('a caching_sha2_password salt is %d bytes' % CACHING_SHA2_SALT_BYTES)
    if rounds % CACHING_SHA2_ROUND_MULTIPLIER or not 1 <= rounds // CACHING_SHA2_ROUND_MULTIPLIER <= 0xfff:
        raise ValueError('caching_sha2_password rounds are a multiple of 1000 up to 4095000')
    digest = sha256_crypt_digest(password.encode('utf-8'), salt, rounds)
    head = '%s%03X$' % (CACHING_SHA2_PREFIX, rounds // CACHING_SHA2_ROUND_MULTIPLIER)
    return head.encode('ascii') + salt + digest.encode('ascii')


def _salt_byte(value):
    value &= 0x7f
    if value in (0, ord('$')):
        value += 1
    return value


def parse_caching_sha2(stored):
    """(rounds, salt bytes, digest str) of a stored caching_sha2_password string, or None."""
    if isinstance(stored, str):
        stored = stored.encode('latin-1', 'replace')
    if not stored or not stored.startswith(CACHING_SHA2_PREFIX.encode('ascii')):
        return None
    expected = 3 + 3 + 1 + CACHING_SHA2_SALT_BYTES + CACHING_SHA2_DIGEST_CHARS
    if len(stored) != expected or stored[6:7] != b'$':
        return None
    try:
        rounds = int(stored[3:6].decode('ascii'), 16) * CACHING_SHA2_ROUND_MULTIPLIER
    except ValueError:
        return None
    salt = stored[7:7 + CACHING_SHA2_SALT_BYTES]
    digest = stored[7 + CACHING_SHA2_SALT_BYTES:].decode('ascii', 'replace')
    return rounds, salt, digest


def caching_sha2_matches(password, stored):
    """True/False when the stored string is a caching_sha2 hash; None when it is not one."""
    parsed = parse_caching_sha2(stored)
    if parsed is None:
        return None
    rounds, salt, digest = parsed
    mine = sha256_crypt_digest(password.encode('utf-8'), salt, rounds)
    return hmac.compare_digest(mine, digest)
