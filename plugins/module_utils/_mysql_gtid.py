# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: MySQL 8 GTID sets as a point-in-time recovery target.

A MySQL GTID set is ``<server uuid>:<interval>[:<interval>...]`` with intervals ``N`` or ``N-M``,
several uuids separated by commas (``3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123,
4f22...:1-5``); MySQL 8.3+ adds tags (``uuid:tag:1-5``), the intervals after a tag being that tag's.

As ``db_restore target_position`` the set names the transactions to replay after the backup:
mysqlbinlog decodes only them (``--include-gtids``) and the restored instance, running with
``gtid_mode=ON``, skips those the backup already holds. ``uuid:1-123`` recovers up to and
including transaction 123 of that server; ``uuid:1-49:51-123`` does too but leaves out 50.
MariaDB's GTIDs (``domain-server-sequence``) are another thing, handled in mysql_backup.
"""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')
TAG_RE = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]{0,31}$')
INTERVAL_RE = re.compile(r'^(\d+)(?:-(\d+))?$')
# the largest transaction number MySQL gives (2^63 - 1)
MAX_GNO = 2 ** 63 - 1


def looks_like(text):
    """Is the text meant as a MySQL GTID set (it starts with a server uuid and a colon)?"""
    if text is None or isinstance(text, (dict, list)):
        return False
    first = str(text).strip().split(',', 1)[0].strip()
    return bool(UUID_RE.match(first.split(':', 1)[0].strip())) and ':' in first


def parse(text, what='gtid'):
    """{(uuid, tag): [(start, end), ...]} of a MySQL GTID set, intervals merged; DbError saying what is wrong."""
    raw = '' if text is None else str(text)
    found = {}
    groups = [g.strip() for g in raw.replace('\n', '').split(',')]
    if not raw.strip() or any(not g for g in groups):
        raise DbError('recover to target_position', '%s=%s' % (what, raw), 'an empty GTID set or an empty part '
                      'between commas in a MySQL GTID set')
    for group in groups:
        parts = [p.strip() for p in group.split(':')]
        uuid = parts[0]
        if not UUID_RE.match(uuid):
            raise DbError('recover to target_position', '%s=%s' % (what, raw), '%r is not a server uuid (32 hex '
                          'digits, like 3e11fa47-71ca-11e1-9e33-c80aa9429562)' % uuid)
        uuid = uuid.replace('-', '').lower()
        uuid = '-'.join((uuid[:8], uuid[8:12], uuid[12:16], uuid[16:20], uuid[20:]))
        tag = ''
        intervals = 0
        for part in parts[1:]:
            match = INTERVAL_RE.match(part)
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) is not None else start
                if start < 1 or end < start or end > MAX_GNO:
                    raise DbError('recover to target_position', '%s=%s' % (what, raw), 'interval %r of %s: '
                                  'transaction numbers run from 1 to %d and N-M needs N <= M'
                                  % (part, uuid, MAX_GNO))
                found.setdefault((uuid, tag), []).append((start, end))
                intervals += 1
            elif not part:
                raise DbError('recover to target_position', '%s=%s' % (what, raw), 'a colon with no interval after it '
                              'in %s: give an interval (N or N-M), like %s:1-123' % (group, uuid))
            elif TAG_RE.match(part):
                tag = part.lower()
            else:
                raise DbError('recover to target_position', '%s=%s' % (what, raw), '%r after %s is neither an '
                              'interval (N or N-M) nor a tag' % (part, uuid))
        if not intervals or not found.get((uuid, tag)):
            raise DbError('recover to target_position', '%s=%s' % (what, raw), '%s names no transactions (give '
                          'an interval after it, like %s:1-123)' % (group, uuid))
    return dict((key, _merge(ranges)) for key, ranges in found.items())


def _merge(ranges):
    out = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def text(gtid_set):
    """The canonical spelling of a parsed set (uuids in lower case, sorted, intervals merged)."""
    groups = {}
    for (uuid, tag), ranges in sorted(gtid_set.items()):
        pieces = groups.setdefault(uuid, [])
        if tag:
            pieces.append(tag)
        pieces.extend(str(s) if s == e else '%d-%d' % (s, e) for s, e in ranges)
    return ','.join('%s:%s' % (uuid, ':'.join(pieces)) for uuid, pieces in sorted(groups.items()))


def normalize(value, what='gtid'):
    """The canonical text of a GTID set given as text; DbError when it is not one."""
    return text(parse(value, what))


def _parse_recorded(value):
    """A GTID set a backup recorded (gtid_executed: may be empty), or None when it holds none or is not one."""
    if not value or not looks_like(value):
        return None
    try:
        return parse(value)
    except DbError:
        return None


def subtract(a, b):
    """The transactions of set a that are not in set b."""
    out = {}
    for key, ranges in a.items():
        rest = list(ranges)
        for bs, be in b.get(key, []):
            nxt = []
            for s, e in rest:
                if be < s or bs > e:
                    nxt.append((s, e))
                    continue
                if s < bs:
                    nxt.append((s, bs - 1))
                if e > be:
                    nxt.append((be + 1, e))
            rest = nxt
        if rest:
            out[key] = rest
    return out


def target_before(recorded, target):
    """True when the backup (its recorded GTID set) holds a transaction of a server the target names that
    the target leaves out (past it, or one left out on purpose): a replay cannot undo it. None when the
    backup recorded no GTID set."""
    done = _parse_recorded(recorded)
    if done is None:
        return None
    wanted = parse(target)
    named = set(wanted)
    return bool(subtract(dict((k, v) for k, v in done.items() if k in named), wanted))


def unreachable(archive_end, target, log_dir, log_id):
    """Why the archive (the GTID set its newest log backup ended at) cannot reach the target, or None."""
    end = _parse_recorded(archive_end)
    if end is None:
        return None
    beyond = subtract(parse(target), end)
    if not beyond:
        return None
    return ('the archive %s ends at GTID set %s (log backup %s): %s is not in it (not logged yet, or by another '
            'server: take a log backup with db_backup type=log first)' % (log_dir, text(end), log_id, text(beyond)))


def flavor_of(manifest):
    """'mariadb' or 'mysql' as the backup's manifest records it, None when it does not say."""
    details = (manifest or {}).get('details') or {}
    if details.get('flavor'):
        return details['flavor']
    version = str((manifest or {}).get('server_version') or '')
    return ('mariadb' if 'mariadb' in version.lower() else 'mysql') if version else None


def check_backup(manifest, target):
    """Refuse a GTID target of the other flavour than the backup's, and a MySQL GTID set for a backup whose
    source ran with gtid_mode OFF (no GTID set recorded: its binary logs carry no GTIDs to select)."""
    flavor = flavor_of(manifest)
    stop_position = (manifest or {}).get('stop_position')
    if not looks_like(target):
        if flavor == 'mysql':
            raise DbError('recover to target_position', 'gtid=%s' % target, 'a MariaDB GTID position, but the backup '
                          'is of MySQL: give a MySQL GTID set (like 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123) or '
                          '<binlog_file>:<binlog_pos>')
        return
    if flavor == 'mariadb':
        raise DbError('recover to target_position', 'gtid=%s' % target, 'a MySQL GTID set, but the backup is of '
                      'MariaDB: give a MariaDB GTID position (domain-server-sequence, like 0-1-100) or '
                      '<binlog_file>:<binlog_pos>')
    if _parse_recorded((stop_position or {}).get('gtid')) is None:
        raise DbError('recover to target_position', 'gtid=%s' % target, 'the backup records no GTID set (the '
                      'server ran with gtid_mode OFF when it was taken): recover to <binlog_file>:<binlog_pos> or to '
                      'a target_time instead')


def replay_options(target):
    """The mysqlbinlog options that select the target's transactions."""
    return ['--include-gtids=%s' % normalize(target)]
