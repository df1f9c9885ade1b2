# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: engine-independent parsing and comparison of setting values.

A value is brought to one canonical Python value (int, float, bool or str) so that
'128MB' equals '131072kB', '1GB' equals '1024MB', 'on' equals 'true' equals 1, and
enumerations compare case-insensitively.  Memory units are 1024-based, as both
PostgreSQL and MySQL use them.  ``ValueError`` carries a message a DBA can act on.
"""

from __future__ import annotations

import re

KIB = 1024
MEMORY_UNITS = {'B': 1, 'kB': KIB, 'MB': KIB ** 2, 'GB': KIB ** 3, 'TB': KIB ** 4}
# microseconds
TIME_UNITS = {'us': 1, 'ms': 1000, 's': 1000 ** 2, 'min': 60 * 1000 ** 2, 'h': 3600 * 1000 ** 2,
              'd': 86400 * 1000 ** 2}

# Spellings accepted from users (PostgreSQL's own, MySQL option-file suffixes, IEC names).
_MEMORY_ALIASES = {
    'b': 'B', 'byte': 'B', 'bytes': 'B',
    'k': 'kB', 'kb': 'kB', 'kib': 'kB',
    'm': 'MB', 'mb': 'MB', 'mib': 'MB',
    'g': 'GB', 'gb': 'GB', 'gib': 'GB',
    't': 'TB', 'tb': 'TB', 'tib': 'TB',
}
_TIME_ALIASES = {
    'us': 'us', 'ms': 'ms', 's': 's', 'sec': 's', 'secs': 's', 'second': 's', 'seconds': 's',
    'min': 'min', 'mins': 'min', 'minute': 'min', 'minutes': 'min',
    'h': 'h', 'hour': 'h', 'hours': 'h', 'd': 'd', 'day': 'd', 'days': 'd',
}
_TRUE = ('on', 'true', 'yes', '1', 't', 'y')
_FALSE = ('off', 'false', 'no', '0', 'f', 'n')
_NUMBER = re.compile(r'^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$')


def unit_scale(unit):
    """``(kind, multiplier)`` of a catalog unit such as '8kB', 'MB', 'ms' or None.

    kind is 'memory' (multiplier in bytes), 'time' (in microseconds) or None.
    """
    if not unit:
        return None, 1
    match = re.match(r'^(\d*)\s*([A-Za-z]+)$', unit.strip())
    if not match:
        return None, 1
    count = int(match.group(1) or 1)
    name = match.group(2)
    if name in MEMORY_UNITS:
        return 'memory', count * MEMORY_UNITS[name]
    if name in TIME_UNITS:
        return 'time', count * TIME_UNITS[name]
    return None, 1


def parse_bool(value):
    """True/False from on/off, true/false, yes/no, 1/0 (any case); ValueError otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError('%r is not a boolean (use on/off, true/false, yes/no or 1/0)' % (value,))


def parse_quantity(value, unit=None, kind=None):
    """Amount of a memory or time quantity in the catalog ``unit``'s base (bytes or microseconds).

    A bare number is taken in ``unit`` (PostgreSQL's rule: shared_buffers = 1024 means
    1024 x 8kB).  ``kind`` forces 'memory' or 'time' when ``unit`` is empty (MySQL sizes
    accept K/M/G/T suffixes and are in bytes).
    """
    unit_kind, factor = unit_scale(unit)
    kind = unit_kind or kind
    if isinstance(value, bool):
        raise ValueError('%r is not a number' % (value,))
    if isinstance(value, (int, float)):
        return value * factor
    match = _NUMBER.match(str(value))
    if not match:
        raise ValueError('%r is not a number%s' % (value, _unit_hint(kind)))
    number = float(match.group(1)) if re.search(r'[.eE]', match.group(1)) else int(match.group(1))
    suffix = match.group(2)
    if not suffix:
        return number * factor
    if kind == 'memory' and suffix.lower() in _MEMORY_ALIASES:
        return number * MEMORY_UNITS[_MEMORY_ALIASES[suffix.lower()]]
    if kind == 'time' and (suffix in _TIME_ALIASES or suffix.lower() in _TIME_ALIASES):
        return number * TIME_UNITS[_TIME_ALIASES.get(suffix, _TIME_ALIASES.get(suffix.lower()))]
    raise ValueError('%r has a unit this setting does not take%s' % (value, _unit_hint(kind)))


def _unit_hint(kind):
    if kind == 'memory':
        return ' (valid units: B, kB, MB, GB, TB)'
    if kind == 'time':
        return ' (valid units: us, ms, s, min, h, d)'
    return ''


def _as_number(value, integer):
    if isinstance(value, bool):
        raise ValueError('%r is not a number' % (value,))
    if isinstance(value, (int, float)):
        number = value
    else:
        match = _NUMBER.match(str(value))
        if not match or match.group(2):
            raise ValueError('%r is not a number' % (value,))
        number = float(match.group(1))
    if integer:
        if float(number) != int(float(number)):
            raise ValueError('%r is not a whole number' % (value,))
        return int(float(number))
    return float(number)


def normalize(value, vartype, unit=None, enumvals=None, min_val=None, max_val=None, kind=None):
    """The canonical value of ``value`` for a setting described by catalog attributes.

    vartype: 'bool' | 'integer' | 'real' | 'enum' | 'set' | 'string'.  Integers with a unit
    are brought to whole multiples of the catalog unit (rounded, as the servers do), so
    '128MB' and '131072kB' both give 16384 for shared_buffers (unit 8kB).
    Raises ValueError when the value is not valid for the setting.
    """
    if value is None:
        raise ValueError('a value is required')
    if vartype == 'bool':
        return parse_bool(value)
    if vartype in ('integer', 'real'):
        unit_kind, factor = unit_scale(unit)
        if unit_kind or kind:
            amount = parse_quantity(value, unit, kind=kind)
            number = amount / factor
            number = int(round(number)) if vartype == 'integer' else float(number)
        else:
            number = _as_number(value, vartype == 'integer')
        _check_range(value, number, min_val, max_val, unit)
        return number
    if vartype == 'enum':
        text = str(value).strip() if not isinstance(value, bool) else ('on' if value else 'off')
        if enumvals:
            for candidate in enumvals:
                if candidate.lower() == text.lower():
                    return candidate
            # booleans given to boolean-like enums (e.g. huge_pages: on/off/try)
            try:
                flag = 'on' if parse_bool(value) else 'off'
            except ValueError:
                flag = None
            for candidate in enumvals:
                if flag and candidate.lower() == flag:
                    return candidate
            raise ValueError('%r is not one of: %s' % (value, ', '.join(enumvals)))
        return text.lower()
    if vartype == 'flagset':
        return _normalize_flags(value, enumvals)
    if vartype == 'set':
        items = [i.strip().lower() for i in str(value).split(',') if i.strip()]
        if enumvals:
            allowed = [c.lower() for c in enumvals]
            bad = [i for i in items if i not in allowed]
            if bad:
                raise ValueError('%s not allowed (choose from: %s)' % (', '.join(bad), ', '.join(enumvals)))
        return ','.join(sorted(set(items)))
    if isinstance(value, bool):
        return 'on' if value else 'off'
    return str(value)


def _normalize_flags(value, enumvals):
    """'MRR=on, mrr_sort_keys=OFF' -> 'mrr=on,mrr_sort_keys=off': the flags given (MySQL's optimizer_switch)."""
    allowed = [c.lower() for c in enumvals or [] if c.lower() != 'default']
    flags = {}
    for item in str(value).split(','):
        if not item.strip():
            continue
        name, sep, state = item.partition('=')
        name, state = name.strip().lower(), state.strip().lower()
        if not sep or state not in ('on', 'off'):
            raise ValueError('%r is not flag=on or flag=off' % item.strip())
        if allowed and name not in allowed:
            raise ValueError('unknown flag %s (choose from: %s)' % (name, ', '.join(allowed)))
        flags[name] = state
    if not flags:
        raise ValueError('give at least one flag=on or flag=off')
    return ','.join('%s=%s' % item for item in flags.items())


def same_flags(current, wanted):
    """True when every flag of ``wanted`` has its state in ``current`` (both 'flag=on,flag=off')."""
    have = dict(item.split('=', 1) for item in str(current).split(',') if '=' in item)
    return all(have.get(name) == state for name, state in
               (item.split('=', 1) for item in str(wanted).split(',') if '=' in item))


def _check_range(value, number, min_val, max_val, unit):
    if min_val is not None and number < float(min_val):
        raise ValueError('%r is below the minimum %s' % (value, _limit(min_val, unit)))
    if max_val is not None and number > float(max_val):
        raise ValueError('%r is above the maximum %s' % (value, _limit(max_val, unit)))


def _limit(limit, unit):
    limit = float(limit)
    if limit == int(limit):
        limit = int(limit)
    return format_quantity(limit, unit) if unit else _plain(limit)


def _plain(number):
    number = float(number)
    return str(int(number)) if number == int(number) else str(number)


def format_quantity(number, unit):
    """Render a count of catalog units as the largest exact unit: 16384 x 8kB -> '128MB'."""
    kind, factor = unit_scale(unit)
    if kind is None or number is None:
        return _plain(number) if isinstance(number, (int, float)) and not isinstance(number, bool) else number
    if number <= 0:
        return _plain(number)
    amount = number * factor
    table = MEMORY_UNITS if kind == 'memory' else TIME_UNITS
    for name, size in sorted(table.items(), key=lambda item: -item[1]):
        if amount >= size and float(amount) % size == 0:
            return '%d%s' % (amount // size, name)
    return _plain(number)


def render(canonical, vartype, unit=None):
    """The canonical value as a setting string: 'on'/'off', '128MB', 'replica', '0.5'."""
    if vartype == 'bool':
        return 'on' if canonical else 'off'
    if vartype in ('integer', 'real'):
        return format_quantity(canonical, unit)
    return str(canonical)


def same(left, right):
    """Compare two canonical values (floats with a relative tolerance)."""
    if isinstance(left, float) or isinstance(right, float):
        try:
            left, right = float(left), float(right)
        except (TypeError, ValueError):
            return False
        return abs(left - right) <= 1e-9 * max(1.0, abs(left), abs(right))
    return left == right


def human_bytes(amount):
    """1536 -> '1.5 KiB' for reports."""
    if amount is None:
        return '-'
    amount = float(amount)
    for name in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(amount) < 1024 or name == 'TiB':
            return ('%d %s' % (amount, name)) if name == 'B' else ('%.1f %s' % (amount, name))
        amount /= 1024.0
    return '%.1f TiB' % amount


def human_seconds(seconds):
    """93784 -> '1d 2h 3m' for reports."""
    if seconds is None:
        return '-'
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return '%dd %dh %dm' % (days, hours, minutes)
    if hours:
        return '%dh %dm' % (hours, minutes)
    if minutes:
        return '%dm %ds' % (minutes, secs)
    return '%ds' % secs
