# -*- coding: utf-8 -*-
"""Setting values: units, booleans, enumerations, ranges, rendering (no server)."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _units


@pytest.mark.parametrize('left, right, unit', [
    ('128MB', '131072kB', '8kB'),          # shared_buffers
    ('1GB', '1024MB', 'kB'),               # work_mem
    ('1GB', 1048576, 'kB'),                # a bare number is in the catalog unit
    ('16384', '128MB', '8kB'),
    ('1s', '1000ms', 'ms'),                # log_min_duration_statement
    ('5min', 300, 's'),                    # checkpoint_timeout
    ('1h', '60min', 's'),
    ('1TB', '1024GB', 'MB'),
])
def test_equivalent_quantities_normalise_to_the_same_value(left, right, unit):
    a = _units.normalize(left, 'integer', unit)
    b = _units.normalize(right, 'integer', unit)
    assert a == b
    assert _units.same(a, b)


def test_different_quantities_differ():
    assert _units.normalize('128MB', 'integer', '8kB') != _units.normalize('256MB', 'integer', '8kB')
    assert _units.normalize('128MB', 'integer', '8kB') == 16384


def test_values_are_rounded_to_the_catalog_unit_like_the_server():
    # PostgreSQL rounds with rint(): 100kB of 8kB pages is 12 pages, 104kB is 13
    assert _units.normalize('100kB', 'integer', '8kB') == 12
    assert _units.normalize('104kB', 'integer', '8kB') == 13


def test_mysql_size_suffixes_are_bytes():
    assert _units.normalize('64M', 'integer', kind='memory') == 64 * 1024 * 1024
    assert _units.normalize('1G', 'integer', kind='memory') == _units.normalize('1024M', 'integer', kind='memory')
    assert _units.normalize('128K', 'integer', kind='memory') == 131072
    assert _units.normalize(4096, 'integer', kind='memory') == 4096


@pytest.mark.parametrize('value', ['on', 'ON', 'true', 'True', 'yes', '1', 1, True, 't'])
def test_true_spellings(value):
    assert _units.normalize(value, 'bool') is True


@pytest.mark.parametrize('value', ['off', 'OFF', 'false', 'no', '0', 0, False, 'f'])
def test_false_spellings(value):
    assert _units.normalize(value, 'bool') is False


def test_not_a_boolean_is_refused():
    with pytest.raises(ValueError, match='not a boolean'):
        _units.normalize('maybe', 'bool')


def test_enumerations_compare_without_case_and_keep_the_catalog_spelling():
    values = ['MIXED', 'STATEMENT', 'ROW']
    assert _units.normalize('mixed', 'enum', enumvals=values) == 'MIXED'
    assert _units.normalize('Row', 'enum', enumvals=values) == _units.normalize('ROW', 'enum', enumvals=values)
    with pytest.raises(ValueError, match='not one of: MIXED, STATEMENT, ROW'):
        _units.normalize('columnar', 'enum', enumvals=values)


def test_boolean_words_reach_boolean_like_enumerations():
    assert _units.normalize(True, 'enum', enumvals=['off', 'on', 'try']) == 'on'
    assert _units.normalize('false', 'enum', enumvals=['off', 'on', 'try']) == 'off'


def test_sets_compare_without_order_or_case():
    allowed = ['NONE', 'FILE', 'TABLE']
    assert _units.normalize('table,FILE', 'set', enumvals=allowed) == _units.normalize('FILE,TABLE', 'set',
                                                                                       enumvals=allowed)
    with pytest.raises(ValueError, match='not allowed'):
        _units.normalize('FILE,PRINTER', 'set', enumvals=allowed)


def test_range_is_checked_in_catalog_units():
    with pytest.raises(ValueError, match='below the minimum 64kB'):
        _units.normalize('1kB', 'integer', 'kB', min_val='64', max_val='2147483647')
    with pytest.raises(ValueError, match='above the maximum'):
        _units.normalize('300000', 'integer', None, min_val='1', max_val='262143')
    assert _units.normalize('-1', 'integer', 'ms', min_val='-1', max_val='2147483647') == -1


@pytest.mark.parametrize('value, unit', [('lots', 'kB'), ('12 parsecs', 'kB'), ('5min', 'kB'), ('1GB', 's')])
def test_malformed_quantities_are_refused(value, unit):
    with pytest.raises(ValueError):
        _units.normalize(value, 'integer', unit)


def test_integers_must_be_whole_and_reals_are_floats():
    with pytest.raises(ValueError, match='whole number'):
        _units.normalize('2.5', 'integer')
    assert _units.normalize('2', 'real') == 2.0
    assert _units.same(_units.normalize('0.10', 'real'), _units.normalize(0.1, 'real'))
    assert not _units.same(0.1, 0.2)


def test_strings_are_kept_as_given():
    assert _units.normalize('"$user", public', 'string') == '"$user", public'


def test_none_is_refused():
    with pytest.raises(ValueError, match='value is required'):
        _units.normalize(None, 'integer', 'kB')


@pytest.mark.parametrize('number, unit, text', [
    (16384, '8kB', '128MB'),
    (4096, 'kB', '4MB'),
    (1048576, 'kB', '1GB'),
    (300, 's', '5min'),
    (250, 'ms', '250ms'),
    (1500, 'ms', '1500ms'),
    (-1, 'ms', '-1'),
    (0, 'kB', '0'),
    (7, None, '7'),
])
def test_format_quantity_uses_the_largest_exact_unit(number, unit, text):
    assert _units.format_quantity(number, unit) == text


def test_render_round_trips_through_normalize():
    for value, unit in (('128MB', '8kB'), ('5min', 's'), ('250ms', 'ms')):
        canonical = _units.normalize(value, 'integer', unit)
        assert _units.normalize(_units.render(canonical, 'integer', unit), 'integer', unit) == canonical
    assert _units.render(True, 'bool') == 'on'


def test_unit_scale():
    assert _units.unit_scale('8kB') == ('memory', 8192)
    assert _units.unit_scale('min') == ('time', 60 * 1000 ** 2)
    assert _units.unit_scale(None) == (None, 1)


def test_human_formats():
    assert _units.human_bytes(1536) == '1.5 KiB'
    assert _units.human_bytes(None) == '-'
    assert _units.human_seconds(93784) == '1d 2h 3m'
    assert _units.human_seconds(59) == '59s'


def test_flag_sets_keep_the_flags_given_and_compare_them_only():
    assert _units.normalize('MRR=on, mrr_sort_keys=OFF', 'flagset', enumvals=['mrr', 'mrr_sort_keys', 'default']) == \
        'mrr=on,mrr_sort_keys=off'
    for bad in ('mrr', 'mrr=maybe', '', 'nope=on'):
        with pytest.raises(ValueError):
            _units.normalize(bad, 'flagset', enumvals=['mrr', 'default'])
    assert _units.same_flags('index_merge=on,mrr=on,mrr_sort_keys=off', 'mrr_sort_keys=off,mrr=on')
    assert not _units.same_flags('index_merge=on,mrr=off', 'mrr=on')
