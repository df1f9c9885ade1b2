# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, settings area (mixed into the PostgresEngine class).

Settings are written with ALTER SYSTEM (postgresql.auto.conf), which cannot run inside a
transaction block: the engine's connection is in autocommit, so each statement stands alone.
Values are compared through ``_units.normalize`` with the catalog's unit, type and range.
"""

from __future__ import annotations

import functools
import re

from ansible_collections.dbops.admin.plugins.module_utils import _units
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

_PG_SETTINGS_SQL = (
    "SELECT name, setting, unit, vartype, context, enumvals, min_val, max_val, pending_restart, "
    "source, boot_val, current_setting(name) AS display FROM pg_settings WHERE lower(name) = ANY(%s)")
# Not filtered on error: a setting waiting for a restart shows "setting could not be applied".
_PG_FILE_SETTINGS_SQL = (
    "SELECT lower(name) AS name, setting, sourcefile FROM pg_file_settings WHERE lower(name) = ANY(%s) "
    "ORDER BY seqno")


# Sources of a value this session has and the server has not (ALTER ROLE / ALTER DATABASE ... SET,
# the connection's options): the server's own value comes from the files or is the built-in default.
SESSION_SOURCES = ('global', 'database', 'user', 'database user', 'client', 'session', 'interactive')

# Settings PostgreSQL parses as lists of quoted names (GUC_LIST_QUOTE): ALTER SYSTEM needs one
# literal per element, or 'a, b' would become the single name "a, b".
LIST_SETTINGS = ('search_path', 'temp_tablespaces', 'shared_preload_libraries', 'session_preload_libraries',
                 'local_preload_libraries')


def split_list_setting(value):
    """'"$user", public' -> ('$user', 'public'): elements of a list setting, double quotes removed."""
    if isinstance(value, (list, tuple)):
        # each element is one name; double quotes around it are quoting, as in the string form
        elements = []
        for item in value:
            text = str(item).strip()
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1].replace('""', '"')
            if text:
                elements.append(text)
        return tuple(elements)
    elements, current, quoted, text, i = [], '', False, str(value), 0
    while i < len(text):
        char = text[i]
        if char == '"':
            if quoted and text[i + 1:i + 2] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif char == ',' and not quoted:
            elements.append(current.strip())
            current = ''
        else:
            current += char
        i += 1
    elements.append(current.strip())
    return tuple(e for e in elements if e)


def render_list_setting(elements):
    """The elements as PostgreSQL shows them: quoted when they are not plain lower-case names."""
    shown = []
    for element in elements:
        if element.replace('_', 'a').isalnum() and element == element.lower() and not element[0].isdigit():
            shown.append(element)
        else:
            shown.append('"%s"' % element.replace('"', '""'))
    return ', '.join(shown)


def pg_setting_spec(row):
    """Keyword arguments of ``_units.normalize`` for one pg_settings row."""
    return dict(vartype=row['vartype'], unit=row['unit'], enumvals=row.get('enumvals'),
                min_val=row.get('min_val'), max_val=row.get('max_val'))


# Settings whose value is a libpq connection string, which may carry a password
CONNINFO_SETTINGS = ('primary_conninfo',)
_CONNINFO_PASSWORD = re.compile(r"""\bpassword\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']+))""")
_URI_PASSWORD = re.compile(r'^postgres(?:ql)?://[^:/@?#]*:([^@/?#]+)@')


def conninfo_passwords(text):
    """The passwords written in a libpq connection string (keyword=value or URI form), as they appear in it."""
    if not text or not isinstance(text, str):
        return []
    found = [quoted or plain for quoted, plain in _CONNINFO_PASSWORD.findall(text)]
    found += _URI_PASSWORD.findall(text.strip())
    return [f for f in found if f]


class PostgresSettings:
    """settings methods of the Postgres engine; self is the connected engine."""

    def settings_catalog(self, names):
        """pg_settings rows of ``names`` (lower-cased), keyed by lower-case name.

        The catalog spells a few names in mixed case (TimeZone, DateStyle, IntervalStyle);
        PostgreSQL matches setting names without regard to case, and so do we.
        """
        rows = self.fetch_all(_PG_SETTINGS_SQL, (list(names),), operation='read pg_settings')
        return {row['name'].lower(): row for row in rows}

    def configured_settings(self, names):
        """The value each setting gets from the configuration files (last one wins), if any.

        None when the files cannot be read (pg_file_settings needs superuser or pg_read_all_settings).
        """
        try:
            rows = self.fetch_all(_PG_FILE_SETTINGS_SQL, (list(names),), operation='read pg_file_settings')
        except DbError:
            return None
        configured = {}
        for row in rows:
            configured[row['name']] = row['setting']
        return configured

    def plan_settings(self, desired, option_file=None, reload=True):
        """One entry per requested setting: before/after, context, whether it must change.

        Fails, before anything is written, on an unknown name, a value the setting does
        not accept, or a setting that cannot be changed at all (context internal). With
        ``reload``, a value the files already give but the server does not run yet (written
        with reload: false, or a reload that never came) is a change too: a reload.
        """
        if option_file:
            # MySQL/MariaDB only: silently ignoring it would let a play believe the file is kept
            raise DbError('use option_file', option_file, 'option_file is the MySQL/MariaDB option file; PostgreSQL '
                          'settings are kept by ALTER SYSTEM in postgresql.auto.conf: drop option_file for this '
                          'server')
        wanted = {}
        for name, value in desired.items():
            wanted[str(name).strip().lower()] = value
        catalog = self.settings_catalog(wanted)
        unknown = sorted(n for n in wanted if n not in catalog)
        if unknown:
            raise DbError('change settings', None, 'unknown setting%s: %s (not in pg_settings; a setting of an '
                          'extension exists only once its library is loaded)'
                          % ('s' if len(unknown) > 1 else '', ', '.join(unknown)))
        configured = self.configured_settings(list(wanted))
        files_read = configured is not None
        configured = configured or {}
        plan = []
        for name, value in wanted.items():
            row = catalog[name]
            if row['context'] == 'internal':
                raise DbError('change setting', name, 'it is fixed when the server is built or initialised '
                              '(context internal) and cannot be changed')
            spec = pg_setting_spec(row)
            if name in LIST_SETTINGS:
                normalize, render = split_list_setting, render_list_setting
            else:
                normalize = functools.partial(_units.normalize, **spec)
                render = functools.partial(_units.render, vartype=row['vartype'], unit=row['unit'])
            try:
                target = normalize(value)
            except ValueError as exc:
                raise DbError('change setting', name, 'invalid value: %s' % exc) from None
            running = normalize(row['setting'])
            current, before_text = running, row['display']
            if name in configured:
                try:
                    current = normalize(configured[name])
                    before_text = render(current)
                except ValueError:
                    pass
            elif files_read and row.get('source') in ('configuration file',) + SESSION_SOURCES \
                    and row.get('boot_val') is not None:
                # removed from the files (ALTER SYSTEM RESET, an edited postgresql.conf) but not yet
                # reloaded: the next reload brings the built-in default back, so that is the configured value;
                # a value of this session only (role or database default): the server's is the built-in default
                try:
                    current = normalize(row['boot_val'])
                    before_text = render(current)
                except ValueError:
                    pass
            write = not _units.same(current, target)
            # in the files, not in effect: a setting a reload applies, running with the value of the files or the
            # default (not a role or database default, not the command line), and of a type the server shows as
            # written (a string may come back canonicalised: 'utc' runs as 'UTC')
            reload_only = bool(reload and not write and files_read and row['context'] not in ('postmaster', 'internal')
                               and row.get('source') in ('configuration file', 'default')
                               and row['vartype'] != 'string' and not _units.same(running, target))
            if reload_only:
                before_text = render(running)
            after_text = render(target)
            if name in CONNINFO_SETTINGS:
                # a connection string may hold a password: never shown in queries, diff or settings
                for text in (value, row['setting'], row['display'], configured.get(name), before_text, after_text):
                    for secret in conninfo_passwords(text):
                        for form in (secret, secret.replace("'", "''"), secret.replace('\\', '\\\\')):
                            self.add_secret(form)
            plan.append({
                'name': name,
                'before': before_text,
                'after': after_text,
                'unit': row['unit'],
                'context': row['context'],
                'change': write or reload_only,
                'write': write,
                'restart': row['context'] == 'postmaster' and not _units.same(running, target),
                'running': row['display'],
                'elements': target if name in LIST_SETTINGS else None,
            })
        self.validate_plan(plan)
        return plan

    def validate_plan(self, plan):
        """Refuse, before the first ALTER SYSTEM, what the server would refuse half-way through.

        ALTER SYSTEM runs one setting at a time: a refused second setting left the first one
        written. So check the privilege for every setting, and let the server's own check of
        the value (time zones, search paths, encodings...) run through set_config() where the
        setting may be set in a session; a local set_config() ends with its statement.
        """
        changed = [entry for entry in plan if entry['write']]
        if not changed:
            return
        if not getattr(self, 'is_superuser', False):
            if self.version_num < 150000:
                raise DbError('change settings', None, 'ALTER SYSTEM needs a superuser and this login is not one')
            denied = [entry['name'] for entry in changed if not self.fetch_value(
                "SELECT has_parameter_privilege(%s, 'ALTER SYSTEM')", (entry['name'],),
                operation='check the ALTER SYSTEM privilege')]
            if denied:
                raise DbError('change settings', None, 'this login is not a superuser and has no ALTER SYSTEM '
                              'privilege on %s' % ', '.join(denied))
        superuser = bool(getattr(self, 'is_superuser', False))
        for entry in changed:
            # a login with only the ALTER SYSTEM privilege may not SET a superuser setting in its session
            if entry['context'] != 'user' and not (entry['context'] == 'superuser' and superuser):
                continue
            value = render_list_setting(entry['elements']) if entry.get('elements') is not None else entry['after']
            self.fetch_value('SELECT set_config(%s, %s, true)', (entry['name'], value),
                             operation='change setting %s' % entry['name'])

    def setting_statement(self, entry):
        name = self.quote_qualified(*entry['name'].split('.'))
        if entry.get('elements') is not None:
            value = ', '.join(self.quote_literal(e) for e in entry['elements']) or "''"
        else:
            value = self.quote_literal(entry['after'])
        return 'ALTER SYSTEM SET %s = %s' % (name, value)

    def apply_settings(self, plan, reload=True, option_file=None):
        """Run ALTER SYSTEM for what differs, reload, and report what waits for a restart."""
        changed = [entry for entry in plan if entry['change']]
        if changed and reload and not getattr(self, 'is_superuser', False) and not self.fetch_value(
                "SELECT has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE')",
                operation='check the privilege to reload'):
            raise DbError('change settings', None, 'this login may not run pg_reload_conf(): grant it EXECUTE on '
                          'that function, or set reload: false and reload the server another way')
        for entry in changed:
            if entry['write']:
                self.execute(self.setting_statement(entry), operation='change setting %s' % entry['name'])
        if changed and reload:
            self.execute('SELECT pg_reload_conf()', operation='reload the server configuration')
        pending = set(row['name'].lower()
                      for row in self.fetch_all("SELECT name FROM pg_settings WHERE pending_restart"))
        # The flag of this session appears only once it has processed the reload signal: add ours.
        pending.update(entry['name'] for entry in plan if entry['restart'])
        return {'pending_restart': sorted(pending), 'warnings': [], 'option_file_changed': False}
