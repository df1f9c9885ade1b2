# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the one error type and the one secret masker."""

from __future__ import annotations

MASK = '********'


class DbError(Exception):
    """A failure worded for a DBA: ``could not <operation> <target>: <detail>``."""

    def __init__(self, operation, target=None, detail=None):
        self.operation = operation
        self.target = target
        self.detail = detail
        text = 'could not %s' % operation
        if target:
            text += ' %s' % target
        if detail:
            text += ': %s' % detail
        super().__init__(text)


def mask_secrets(text, secrets):
    """Replace every occurrence of every non-empty secret in text by the mask."""
    if text is None:
        return text
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(str(secret), MASK)
    return text


def driver_message(exc):
    """The server's own words from a driver exception, without driver noise."""
    diag = getattr(exc, 'diag', None)
    primary = getattr(diag, 'message_primary', None) if diag is not None else None
    if primary:
        detail = getattr(diag, 'message_detail', None)
        return primary + ('. ' + detail if detail else '')
    args = getattr(exc, 'args', ())
    # PyMySQL errors are (errno, message)
    if len(args) == 2 and isinstance(args[0], int):
        return '%s (errno %d)' % (args[1], args[0])
    text = str(exc).strip()
    # libpq prefixes: 'connection to server at "h", port p failed: FATAL:  ...'
    if 'FATAL:' in text:
        text = text.split('FATAL:', 1)[1]
    elif ' failed: ' in text:
        text = text.split(' failed: ', 1)[1]
    # libpq puts its hint on a line of its own: 'Connection refused\n\tIs the server running ...?'
    sentences = []
    for line in text.splitlines():
        line = ' '.join(line.split())
        if not line:
            continue
        if sentences and sentences[-1][-1] not in '.?!:;':
            sentences[-1] += '.'
        sentences.append(line)
    return ' '.join(sentences)
