# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: streaming AES-256-GCM encryption of backup files.

File format (version 1)::

    magic  b'DBOPSEC1'                      8 bytes
    prefix random nonce prefix               8 bytes
    chunks (4-byte big-endian length N, then N bytes of ciphertext+16-byte tag) ...

Each chunk holds at most CHUNK bytes of plaintext and is sealed with the nonce
``prefix + chunk index (4 bytes)``; the associated data is the header, the chunk index and
a final flag, so chunks cannot be reordered, dropped or the file truncated unnoticed.
The key comes from the passphrase through scrypt with a per-backup salt; only the salt
and a key check value (HMAC of a fixed text) are stored, never the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the host
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = _exc
    InvalidTag = AESGCM = Scrypt = None

ALGORITHM = 'AES-256-GCM'
KDF = 'scrypt'
MAGIC = b'DBOPSEC1'
CHUNK = 1024 * 1024
SCRYPT_N = 2 ** 15
SCRYPT_R = 8
SCRYPT_P = 1
KEY_CHECK_TEXT = b'dbops.admin backup key check v1'


def require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise DbError('encrypt or decrypt the backup', None,
                      'the cryptography Python library is missing: install cryptography (pip) '
                      'or python3-cryptography (apt/dnf)')


def new_salt():
    return base64.b64encode(os.urandom(16)).decode('ascii')


def derive_key(passphrase, salt, n=None, r=None, p=None):
    """32-byte key from the passphrase and the base64 salt."""
    require_cryptography()
    n, r, p = n or SCRYPT_N, r or SCRYPT_R, p or SCRYPT_P
    if not passphrase:
        raise DbError('use the encryption key', None, 'the key is empty')
    kdf = Scrypt(salt=base64.b64decode(salt), length=32, n=n, r=r, p=p)
    return kdf.derive(passphrase.encode('utf-8'))


def key_check(key):
    """A value proving the key without revealing it (HMAC-SHA256 of a fixed text)."""
    return hmac.new(key, KEY_CHECK_TEXT, hashlib.sha256).hexdigest()


def encryption_record(passphrase):
    """The manifest's ``encryption`` entry and the derived key for a new backup."""
    salt = new_salt()
    key = derive_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    record = {'algorithm': ALGORITHM, 'kdf': KDF, 'kdf_params': {'n': SCRYPT_N, 'r': SCRYPT_R, 'p': SCRYPT_P},
              'salt': salt, 'key_check': key_check(key), 'chunk_size': CHUNK}
    return record, key


def key_for(record, passphrase, backup_id=''):
    """Derive the key of an existing backup; a wrong key is a clear error before any decryption."""
    if not passphrase:
        raise DbError('read encrypted backup', backup_id, 'the backup is encrypted: give encryption_key')
    params = record.get('kdf_params') or {}
    key = derive_key(passphrase, record['salt'], params.get('n', SCRYPT_N), params.get('r', SCRYPT_R),
                     params.get('p', SCRYPT_P))
    if not hmac.compare_digest(key_check(key), record.get('key_check', '')):
        raise DbError('decrypt backup', backup_id, 'wrong encryption key (key check does not match)')
    return key


def _aad(header, index, final):
    return header + struct.pack('>I?', index, final)


def encrypt_file(src, dst, key):
    """Encrypt src into dst chunk by chunk; returns the number of bytes written."""
    require_cryptography()
    aead = AESGCM(key)
    prefix = os.urandom(8)
    header = MAGIC + prefix
    written = 0
    with open(src, 'rb') as fin, open(dst, 'wb') as fout:
        fout.write(header)
        written += len(header)
        index = 0
        chunk = fin.read(CHUNK)
        while True:
            following = fin.read(CHUNK) if chunk else b''
            final = not following
            sealed = aead.encrypt(prefix + struct.pack('>I', index), chunk, _aad(header, index, final))
            fout.write(struct.pack('>I', len(sealed)))
            fout.write(sealed)
            written += 4 + len(sealed)
            if final:
                break
            chunk = following
            index += 1
        fout.flush()
        os.fsync(fout.fileno())
    return written


def decrypt_file(src, dst, key, name=None):
    """Decrypt src into dst; raises DbError naming the file when it was altered or truncated."""
    require_cryptography()
    name = name or src
    aead = AESGCM(key)
    with open(src, 'rb') as fin, open(dst, 'wb') as fout:
        header = fin.read(16)
        if len(header) != 16 or header[:8] != MAGIC:
            raise DbError('decrypt backup file', name, 'not a dbops.admin encrypted file')
        prefix = header[8:]
        index = 0
        while True:
            raw_len = fin.read(4)
            if len(raw_len) != 4:
                raise DbError('decrypt backup file', name, 'the file is truncated')
            (length,) = struct.unpack('>I', raw_len)
            sealed = fin.read(length)
            if len(sealed) != length:
                raise DbError('decrypt backup file', name, 'the file is truncated')
            nonce = prefix + struct.pack('>I', index)
            try:
                plain = aead.decrypt(nonce, sealed, _aad(header, index, False))
                final = False
            except InvalidTag:
                try:
                    plain = aead.decrypt(nonce, sealed, _aad(header, index, True))
                    final = True
                except InvalidTag:
                    raise DbError('decrypt backup file', name,
                                  'authentication failed at chunk %d (wrong key or altered file)' % index) from None
            fout.write(plain)
            if final:
                if fin.read(1):
                    raise DbError('decrypt backup file', name, 'data after the final chunk')
                break
            index += 1
