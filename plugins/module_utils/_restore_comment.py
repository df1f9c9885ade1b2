# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the restore marker a logically restored database carries.

A logical restore records in the target which backup (and target time/position, source
database, roles mode) it holds, so that the same restore again is ``changed: false``.

The marker is a compact JSON object. Where it is kept:

- PostgreSQL, a superuser login: the database setting ``dbops.restored_from`` (a custom
  placeholder setting, ``ALTER DATABASE ... SET``); the database comment stays the source's.
- PostgreSQL, another login (PostgreSQL 15 lets only superusers set placeholder settings on a
  database) and MariaDB: a trailer, one line ``dbops.admin restore: {...}``, appended to the
  source database's comment. ``strip`` gives the comment without it.

Releases before this one wrote the whole comment as ``dbops.admin restore: {...}``: that is a
trailer after an empty comment, so it is read the same way.

A comment that has a length limit (MariaDB: 1024 characters, counted here as bytes of UTF-8) and would not hold the comment and
the full marker gets a short marker ``{"sha256": ...}`` (the digest of the full marker) instead;
``matches`` compares either form. A comment that leaves no room even for that is kept whole,
without a marker (a warning says so): the comment is the user's, the marker only ours.
"""

from __future__ import annotations

import hashlib
import json

PREFIX = 'dbops.admin restore: '
SETTING = 'dbops.restored_from'
# MariaDB: information_schema.SCHEMATA.SCHEMA_COMMENT holds at most this many characters
MARIADB_COMMENT_LIMIT = 1024


def encode(marker):
    """The marker as stored: compact JSON, keys sorted (one spelling for one marker)."""
    return json.dumps(marker, sort_keys=True, separators=(',', ':'), default=str)


def decode(text):
    """The marker dict of an encoded marker (a setting's value), or None when it is not one."""
    if not text:
        return None
    try:
        value = json.loads(str(text))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def digest(marker):
    """The sha256 of the full marker: what a short marker records."""
    return hashlib.sha256(encode(marker).encode('utf-8')).hexdigest()


def split(comment):
    """(the comment without a restore trailer, the trailer's marker or None)."""
    if not comment:
        return comment, None
    text = str(comment)
    if text.startswith(PREFIX):
        head, tail = '', text[len(PREFIX):]
    else:
        at = text.rfind('\n' + PREFIX)
        if at < 0:
            return text, None
        head, tail = text[:at], text[at + 1 + len(PREFIX):]
    if '\n' in tail:
        return text, None   # a line of the comment's own text, not the last line
    marker = decode(tail)
    if marker is None:
        return text, None
    return head, marker


def strip(comment):
    """The comment without a restore trailer (None stays None)."""
    return split(comment)[0]


def append(comment, marker, limit=None):
    """(the comment with the marker's trailer, warning or None).

    Any trailer the comment already had (a backup of a restored database) is replaced. With a
    length limit the trailer is the short form when the full one does not fit; when not even
    that fits, the comment is kept whole without a marker and the warning says so (a repeated
    restore is then not recognised).
    """
    head = strip(comment) or ''
    sep = '\n' if head else ''
    full = head + sep + PREFIX + encode(marker)
    # measured in bytes of UTF-8: MariaDB 10.11 counts the limit in characters, but crashes or hangs on a
    # database comment of about 1,500 bytes, so a marker never makes a comment longer than `limit` bytes
    if limit is None or _size(full) <= limit:
        return full, None
    short = PREFIX + encode({'sha256': digest(marker)})
    if _size(head) + len(sep) + _size(short) <= limit:
        return head + sep + short, None
    return head, ('its comment (%d bytes in UTF-8) was kept, but leaves no room for the restore marker (%d bytes, '
                  'at most %d in all): the same restore again is not recognised as done. Shorten the source '
                  "database's comment to %d bytes to have it recorded"
                  % (_size(head), _size(short) + 1, limit, limit - _size(short) - 1))


def _size(text):
    return len(text.encode('utf-8'))


def matches(held, marker):
    """Does the held marker (full or short form) record exactly this marker?"""
    if not held:
        return False
    if set(held) == {'sha256'}:
        return held['sha256'] == digest(marker)
    return held == marker
