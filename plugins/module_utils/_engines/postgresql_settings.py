# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, settings area (mixed into the PostgresEngine class).

Settings are written with ALTER SYSTEM (postgresql.auto.conf), which cannot run inside a
transaction block: the engine's connection is in autocommit, so each statement stands alone.
Values are compared through ``_units.normalize`` with the catalog's unit, type and range.
"""

from __future__ import annotations

from ansible_collections.dbops.admin.plugins.module_utils import _units
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

_PG_SETTINGS_SQL = (
    "SELECT name, setting, unit, vartype, context, enumvals, min_val, max_val, pending_restart, "
    "source, current_setting(name) AS display FROM pg_settings WHERE name = ANY(%s)")
# Not filtered on error: a setting waiting for a restart shows "setting could not be applied".
_PG_FILE_SETTINGS_SQL = (
    "SELECT name, setting, sourcefile FROM pg_file_settings WHERE name = ANY(%s) ORDER BY seqno")


def pg_setting_spec(row):
    """Keyword arguments of ``_units.normalize`` for one pg_settings row."""
    return dict(vartype=row['vartype'], unit=row['unit'], enumvals=row.get('enumvals'),
                min_val=row.get('min_val'), max_val=row.get('max_val'))


class PostgresSettings:
    """settings methods of the Postgres engine; self is the connected engine."""

    def settings_catalog(self, names):
        """pg_settings rows of ``names`` (lower-cased), keyed by name."""
        rows = self.fetch_all(_PG_SETTINGS_SQL, (list(names),), operation='read pg_settings')
        return {row['name']: row for row in rows}

    def configured_settings(self, names):
        """The value each setting gets from the configuration files (last one wins), if any."""
        try:
            rows = self.fetch_all(_PG_FILE_SETTINGS_SQL, (list(names),), operation='read pg_file_settings')
        except DbError:
            # pg_file_settings needs superuser or pg_read_all_settings; fall back to running values.
            return {}
        configured = {}
        for row in rows:
            configured[row['name']] = row['setting']
        return configured

    def plan_settings(self, desired, option_file=None):
        """One entry per requested setting: before/after, context, whether it must change.

        Fails, before anything is written, on an unknown name, a value the setting does
        not accept, or a setting that cannot be changed at all (context internal).
        """
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
        plan = []
        for name, value in wanted.items():
            row = catalog[name]
            if row['context'] == 'internal':
                raise DbError('change setting', name, 'it is fixed when the server is built or initialised '
                              '(context internal) and cannot be changed')
            spec = pg_setting_spec(row)
            try:
                target = _units.normalize(value, **spec)
            except ValueError as exc:
                raise DbError('change setting', name, 'invalid value: %s' % exc) from None
            running = _units.normalize(row['setting'], **spec)
            current, before_text = running, row['display']
            if name in configured:
                try:
                    current = _units.normalize(configured[name], **spec)
                    before_text = _units.render(current, row['vartype'], row['unit'])
                except ValueError:
                    pass
            after_text = _units.render(target, row['vartype'], row['unit']) \
                if row['vartype'] != 'string' else target
            plan.append({
                'name': name,
                'before': before_text,
                'after': after_text,
                'unit': row['unit'],
                'context': row['context'],
                'change': not _units.same(current, target),
                'restart': row['context'] == 'postmaster' and not _units.same(running, target),
                'running': row['display'],
            })
        return plan

    def setting_statement(self, entry):
        name = self.quote_qualified(*entry['name'].split('.'))
        return 'ALTER SYSTEM SET %s = %s' % (name, self.quote_literal(entry['after']))

    def apply_settings(self, plan, reload=True, option_file=None):
        """Run ALTER SYSTEM for what differs, reload, and report what waits for a restart."""
        changed = [entry for entry in plan if entry['change']]
        for entry in changed:
            self.execute(self.setting_statement(entry), operation='change setting %s' % entry['name'])
        if changed and reload:
            self.execute('SELECT pg_reload_conf()', operation='reload the server configuration')
        pending = set(row['name'] for row in self.fetch_all("SELECT name FROM pg_settings WHERE pending_restart"))
        # The flag of this session appears only once it has processed the reload signal: add ours.
        pending.update(entry['name'] for entry in plan if entry['restart'])
        return {'pending_restart': sorted(pending), 'warnings': [], 'option_file_changed': False}
