# -*- coding: utf-8 -*-
"""The restore marker a logically restored database carries: encoded, appended to the source's
comment, found again (also in the format of older releases), the comment given back intact."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _restore_comment as rc

MARKER = {'backup_id': '20260101T000000Z-full', 'source_database': 'shop', 'target_time': None,
          'target_position': None}


def test_encode_decode_round_trip_and_one_spelling():
    text = rc.encode(MARKER)
    assert rc.decode(text) == MARKER
    assert rc.encode(dict(reversed(list(MARKER.items())))) == text
    assert '\n' not in rc.encode({'source_database': 'a\nb'})


@pytest.mark.parametrize('text', [None, '', 'not json', '[1, 2]', '"a string"', '{"a": '])
def test_decode_of_what_is_not_a_marker(text):
    assert rc.decode(text) is None


@pytest.mark.parametrize('comment', [None, '', 'the shop', 'two\nlines', "quotes ' and \" and \\ backslash",
                                     'ünïcödé', 'ends with a newline\n'])
def test_trailer_keeps_the_comment_and_is_found_again(comment):
    text, warning = rc.append(comment, MARKER)
    assert warning is None
    assert rc.split(text) == (comment or '', MARKER)
    assert rc.strip(text) == (comment or '')
    if comment:
        assert text.startswith(comment)


def test_the_whole_comment_marker_of_older_releases_is_recognised():
    # PostgreSQL wrote json.dumps(marker, sort_keys=True) (with spaces), MariaDB the compact form
    for old in ('dbops.admin restore: ' + json.dumps(MARKER, sort_keys=True),
                'dbops.admin restore: ' + json.dumps(MARKER, sort_keys=True, separators=(',', ':'))):
        assert rc.split(old) == ('', MARKER)


def test_a_comment_without_a_trailer_is_left_as_it_is():
    for comment in ('dbops.admin restore: is what we call it', 'x\ndbops.admin restore: {broken',
                    'dbops.admin restore: {"a": 1}\nand a line after it', 'dbops.admin restore: [1]'):
        assert rc.split(comment) == (comment, None)


def test_an_earlier_trailer_is_replaced_not_stacked():
    first, _w = rc.append('the shop', dict(MARKER, backup_id='old'))
    second, _w = rc.append(first, MARKER)
    assert second.count(rc.PREFIX) == 1
    assert rc.split(second) == ('the shop', MARKER)


def test_a_long_comment_gets_the_short_marker_which_still_matches():
    comment = 'c' * 900
    text, warning = rc.append(comment, MARKER, limit=1024)
    assert warning is None and len(text) <= 1024
    head, held = rc.split(text)
    assert head == comment and set(held) == {'sha256'}
    assert rc.matches(held, MARKER)
    assert not rc.matches(held, dict(MARKER, backup_id='another'))


def test_a_comment_that_leaves_no_room_is_kept_whole_without_a_marker():
    comment = 'c' * 1000
    text, warning = rc.append(comment, MARKER, limit=1024)
    assert text == comment
    assert rc.split(text) == (comment, None)
    assert warning and 'not recognised' in warning and '925 bytes' in warning
    # the largest comment that still takes the short marker
    text, warning = rc.append('c' * 925, MARKER, limit=1024)
    assert warning is None and len(text) == 1024 and rc.matches(rc.split(text)[1], MARKER)


def test_matches_needs_the_same_marker():
    assert rc.matches(MARKER, dict(MARKER))
    assert not rc.matches(None, MARKER)
    assert not rc.matches(dict(MARKER, roles='skip'), MARKER)


def test_limit_counts_bytes_of_utf8():
    """MariaDB 10.11 crashes on a database comment of about 1,500 bytes: multibyte text is measured in bytes."""
    marker = {'backup_id': '20261128T000000Z-logical-full', 'target_time': None}
    head = '\u00e9' * 700           # 700 characters, 1,400 bytes: under the character limit, over the byte limit
    text, warning = rc.append(head, marker, limit=rc.MARIADB_COMMENT_LIMIT)
    assert text == head and warning and '1400 bytes' in warning
    ascii_head = 'e' * 700          # the same length in ASCII leaves room for the marker
    text, warning = rc.append(ascii_head, marker, limit=rc.MARIADB_COMMENT_LIMIT)
    assert warning is None and len(text.encode('utf-8')) <= rc.MARIADB_COMMENT_LIMIT and text.startswith(ascii_head + '\n')
