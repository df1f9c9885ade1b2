# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: statement text read back from a server, made safe to return.

pg_stat_statements keeps utility statements (CREATE ROLE ... PASSWORD '...') verbatim and the
MySQL/MariaDB slow log keeps the text as sent, so a statement a module reports (the slowest
statements of db_info) may carry a password nobody gave to the module. Every string literal of a
statement that deals with a secret is replaced by the mask before it is returned.
"""

from __future__ import annotations

import re

MASK = '********'

# A statement mentioning any of these gets all its string literals masked.
_SECRET_WORDS = re.compile(
    r'password|passwd|identified|secret|passphrase|credential|user\s+mapping|aes_(?:en|de)crypt|'
    r'pgp_(?:sym|pub)_(?:en|de)crypt|encryption_key|des_(?:en|de)crypt|encode\s*\(|decode\s*\(',
    re.IGNORECASE)

# String literals; an unterminated one (text cut by the server) runs to the end.
_SINGLE = r"[EeBbXxNn]?'(?:[^'\\]|''|\\.)*(?:'|$)"
_DOUBLE = r'"(?:[^"\\]|""|\\.)*(?:"|$)'
_DOLLAR = r'\$([A-Za-z_][A-Za-z_0-9]*)?\$.*?(?:\$\1\$|$)'
_POSTGRES_LITERALS = re.compile('%s|%s' % (_DOLLAR, _SINGLE), re.DOTALL)
# MySQL and MariaDB take double quotes for strings too (unless ANSI_QUOTES)
_MYSQL_LITERALS = re.compile('%s|%s' % (_SINGLE, _DOUBLE), re.DOTALL)


def mask_statement_secrets(text, engine='postgresql'):
    """``text`` with every string literal masked when the statement deals with a secret; else unchanged."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    if not text or not _SECRET_WORDS.search(text):
        return text
    literals = _POSTGRES_LITERALS if engine == 'postgresql' else _MYSQL_LITERALS
    return literals.sub("'%s'" % MASK, text)
