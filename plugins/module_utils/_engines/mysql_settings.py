# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, settings area (mixed into the MysqlEngine class).

MySQL 8 persists a global variable itself (SET PERSIST, or SET PERSIST_ONLY for a
read-only one).  MariaDB has no SET PERSIST: a dynamic variable is changed with SET GLOBAL
and made durable in the instance's option file, inside a block this module owns; a
read-only variable can only be written to the option file and waits for a restart.
"""

from __future__ import annotations

import decimal
import os
import re
import tempfile

from ansible_collections.dbops.admin.plugins.module_utils import _units
from ansible_collections.dbops.admin.plugins.module_utils._errors import MASK, DbError

BLOCK_BEGIN = '# BEGIN dbops.admin db_config managed settings (do not edit inside this block)'
BLOCK_END = '# END dbops.admin db_config managed settings'
_NAME = re.compile(r'^[a-z][a-z0-9_]*(\.[a-z0-9_]+)?$')
_ER_READ_ONLY_VARIABLE = 1238


def normalize_variable_name(name):
    """MySQL accepts dashes in option files; SQL names use underscores."""
    return str(name).strip().lower().replace('-', '_')


def mariadb_variable_spec(row):
    """``_units.normalize`` keyword arguments from an information_schema.SYSTEM_VARIABLES row."""
    vtype = (row.get('VARIABLE_TYPE') or '').upper()
    enumvals = [v for v in (row.get('ENUM_VALUE_LIST') or '').split(',') if v] or None
    if vtype == 'BOOLEAN':
        return dict(vartype='bool')
    if 'INT' in vtype:
        return dict(vartype='integer', kind='memory', min_val=row.get('NUMERIC_MIN_VALUE'),
                    max_val=row.get('NUMERIC_MAX_VALUE'))
    if vtype in ('DOUBLE', 'DECIMAL', 'FLOAT'):
        return dict(vartype='real', min_val=row.get('NUMERIC_MIN_VALUE'), max_val=row.get('NUMERIC_MAX_VALUE'))
    if vtype == 'ENUM':
        return dict(vartype='enum', enumvals=enumvals)
    if vtype == 'SET':
        return dict(vartype='set', enumvals=enumvals)
    if vtype == 'FLAGSET':
        return dict(vartype='flagset', enumvals=enumvals)
    if str(row.get('name') or '').lower().endswith('storage_engine'):
        return dict(vartype='enum')  # an engine name: the server shows 'InnoDB' however it was spelled
    return dict(vartype='string')


def inferred_variable_spec(value, wanted=None):
    """MySQL 8 publishes no variable types: infer them from the current value (and the value wanted:
    an ON/OFF variable asked for a value that is no boolean is an enum with more values, like gtid_mode
    OFF_PERMISSIVE / ON_PERMISSIVE or enforce_gtid_consistency WARN; the server checks the value)."""
    text = '' if value is None else str(value)
    if text.upper() in ('ON', 'OFF'):
        if wanted is not None:
            try:
                _units.parse_bool(wanted)
            except ValueError:
                return dict(vartype='enum')
        return dict(vartype='bool')
    if re.match(r'^-?\d+$', text):
        return dict(vartype='integer', kind='memory')
    if re.match(r'^-?\d+\.\d+$', text):
        return dict(vartype='real')
    if re.match(r'^[a-z_]+=(on|off)(,[a-z_]+=(on|off))*$', text, re.I):
        return dict(vartype='flagset')  # optimizer_switch
    return dict(vartype='enum')  # case-insensitive string comparison, no value list


def sql_value(canonical, vartype):
    """The value bound in SET GLOBAL / SET PERSIST: numbers unquoted, the rest as strings."""
    if vartype == 'bool':
        return 'ON' if canonical else 'OFF'
    if vartype == 'real':
        return decimal.Decimal(repr(float(canonical)))
    if vartype == 'integer':
        return canonical
    return str(canonical)


def option_text(canonical, vartype):
    """The value as written in an option file."""
    if vartype == 'bool':
        return 'ON' if canonical else 'OFF'
    if vartype == 'real':
        return _units.format_quantity(canonical, None)
    text = str(canonical)
    if text == '' or re.search(r'[\s#;"\'\\]', text):
        return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')
    return text


def _unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '"\'':
        inner = text[1:-1]
        return inner.replace('\\"', '"').replace('\\\\', '\\') if text[0] == '"' else inner
    return text


def read_managed_block(text):
    """``{name: value}`` of the managed block in an option file's text (empty when absent)."""
    values = {}
    inside = False
    for line in (text or '').splitlines():
        stripped = line.strip()
        if stripped == BLOCK_BEGIN:
            inside = True
            continue
        if stripped == BLOCK_END:
            inside = False
            continue
        if not inside or not stripped or stripped.startswith(('#', ';', '[')):
            continue
        if '=' in stripped:
            key, value = stripped.split('=', 1)
            values[normalize_variable_name(key)] = _unquote(value)
        else:
            values[normalize_variable_name(stripped)] = 'ON'
    return values


def write_managed_block(text, values, section):
    """The option file's text with the managed block set to ``values`` (appended when new).

    The block carries its own section header so that whatever precedes it, its lines
    belong to ``section``; being last, it wins over earlier lines for the same option.
    """
    lines = ['', BLOCK_BEGIN, '[%s]' % section]
    lines += ['%s = %s' % (name, values[name]) for name in sorted(values)]
    lines.append(BLOCK_END)
    block = '\n'.join(lines[1:]) + '\n'
    text = text or ''
    begin = text.find(BLOCK_BEGIN)
    end = text.find(BLOCK_END)
    if begin != -1 and end > begin:
        end = text.find('\n', end)
        tail = text[end + 1:] if end != -1 else ''
        return text[:begin] + block + tail
    if text and not text.endswith('\n'):
        text += '\n'
    return text + ('\n' if text else '') + block


def replace_file(path, content):
    """Write ``content`` to ``path`` atomically, keeping an existing file's owner and mode."""
    directory = os.path.dirname(os.path.abspath(path)) or '.'
    stat = os.stat(path) if os.path.exists(path) else None
    fd, tmp = tempfile.mkstemp(prefix='.dbops-', dir=directory)
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if stat is not None:
            os.chmod(tmp, stat.st_mode & 0o7777)
            try:
                os.chown(tmp, stat.st_uid, stat.st_gid)
            except OSError:
                pass
        else:
            os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class MysqlSettings:
    """settings methods of the Mysql engine; self is the connected engine."""

    def settings_catalog(self, names):
        """Catalog rows of the global variables ``names``, keyed by lower-case name."""
        names = list(names)
        if not names:
            return {}
        marks = ', '.join(['%s'] * len(names))
        if self.is_mariadb:
            rows = self.fetch_all(
                'SELECT LOWER(VARIABLE_NAME) AS name, VARIABLE_TYPE, VARIABLE_SCOPE, READ_ONLY, ENUM_VALUE_LIST, '
                'NUMERIC_MIN_VALUE, NUMERIC_MAX_VALUE, GLOBAL_VALUE AS value '
                'FROM information_schema.SYSTEM_VARIABLES WHERE LOWER(VARIABLE_NAME) IN (%s)' % marks,
                names, operation='read information_schema.SYSTEM_VARIABLES')
        else:
            rows = self.fetch_all(
                'SELECT LOWER(g.VARIABLE_NAME) AS name, g.VARIABLE_VALUE AS value, p.VARIABLE_VALUE AS persisted, '
                'i.VARIABLE_SOURCE AS source '
                'FROM performance_schema.global_variables g '
                'LEFT JOIN performance_schema.persisted_variables p ON p.VARIABLE_NAME = g.VARIABLE_NAME '
                'LEFT JOIN performance_schema.variables_info i ON i.VARIABLE_NAME = g.VARIABLE_NAME '
                'WHERE LOWER(g.VARIABLE_NAME) IN (%s)' % marks,
                names, operation='read performance_schema.global_variables')
        return {row['name']: row for row in rows}

    def option_file_section(self):
        return 'mariadbd' if self.is_mariadb else 'mysqld'

    def check_option_file(self, option_file):
        """Refuse, before any SET GLOBAL, an option file that could not be written afterwards."""
        path = os.path.abspath(option_file)
        directory = os.path.dirname(path)
        if os.path.isdir(path):
            raise DbError('use option file', option_file, 'it is a directory; give the path of a file')
        if not os.path.isdir(directory):
            raise DbError('use option file', option_file, 'its directory %s does not exist' % directory)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise DbError('use option file', option_file, 'its directory %s is not writable for this user'
                          % directory)

    def _read_option_file(self, option_file):
        if not option_file or not os.path.exists(option_file):
            return ''
        try:
            with open(option_file) as handle:
                return handle.read()
        except OSError as exc:
            raise DbError('read option file', option_file, exc.strerror) from None

    def plan_settings(self, desired, option_file=None, reload=True):  # pylint: disable=unused-argument
        """One entry per requested variable; fails before any change on a bad name or value.

        ``reload`` is PostgreSQL's: SET GLOBAL and SET PERSIST take effect at once.
        """
        wanted = {}
        for name, value in desired.items():
            key = normalize_variable_name(name)
            if not _NAME.match(key):
                raise DbError('change setting', repr(name), 'not a valid variable name')
            wanted[key] = value
        catalog = self.settings_catalog(wanted)
        unknown = sorted(n for n in wanted if n not in catalog)
        if unknown:
            raise DbError('change settings', None, 'unknown variable%s: %s (not a global system variable of this '
                          'server)' % ('s' if len(unknown) > 1 else '', ', '.join(unknown)))
        if option_file and not self.is_mariadb:
            # MySQL 8 persists with SET PERSIST: the file would be checked and then silently left alone
            raise DbError('use option_file', option_file, 'MySQL 8 keeps the settings itself with SET PERSIST '
                          '(mysqld-auto.cnf): drop option_file for this server')
        if option_file:
            self.check_option_file(option_file)
        block = read_managed_block(self._read_option_file(option_file)) if option_file else {}
        plan = []
        for name, value in wanted.items():
            row = catalog[name]
            if self.is_mariadb:
                if (row.get('VARIABLE_SCOPE') or '').upper() == 'SESSION ONLY':
                    raise DbError('change setting', name, 'it is a session-only variable with no global value')
                spec = mariadb_variable_spec(row)
                dynamic = (row.get('READ_ONLY') or 'NO').upper() == 'NO'
            else:
                spec = inferred_variable_spec(row.get('value'), value)
                dynamic = None  # learnt from the server when SET PERSIST is refused
            try:
                target = _units.normalize(value, **spec)
            except ValueError as exc:
                raise DbError('change setting', name, 'invalid value: %s' % exc) from None
            try:
                running = _units.normalize(row.get('value'), **spec)
            except ValueError:
                running = row.get('value')
            entry = {'name': name, 'unit': None, 'running': row.get('value'), 'vartype': spec['vartype'],
                     'target': target, 'dynamic': dynamic, 'set_global': False, 'write_file': False,
                     'after': option_text(target, spec['vartype']).strip('"')}
            if self.is_mariadb:
                if not dynamic and not option_file:
                    raise DbError('change setting', name, 'it is not dynamic on MariaDB (it takes effect only at '
                                  'a restart) and no option_file was given to write it to; pass the '
                                  "instance's option file as option_file")
                entry['context'] = 'dynamic' if dynamic else 'restart'
                entry['set_global'] = bool(dynamic) and not _same_value(running, target, spec)
                in_block = block.get(name)
                entry['write_file'] = bool(option_file) and (
                    in_block is None or not _same_text(in_block, target, spec))
                entry['before'] = in_block if in_block is not None else row.get('value')
                entry['restart'] = not dynamic and not _same_value(running, target, spec)
                if name in SECRET_SETTINGS:
                    for text in (value, in_block):
                        for secret in setting_secrets(name, text):
                            self.add_secret(secret)
                    if row.get('value') == MASK:
                        # the server shows only ******** once it is set: compared with the option file's block
                        # when there is one, else left alone (it cannot be compared) with a warning
                        entry['hidden'] = True
                        # (with option_file and no block yet: set once and written, compared from then on)
                        entry['set_global'] = entry['write_file'] if option_file else False
                        entry['restart'] = False
                        if not option_file:
                            entry['warning'] = ('%s is set and the server shows it only as ********, so it cannot be '
                                                'compared: it is left as it is; give option_file to keep it there '
                                                'and compare it with the file' % name)
            else:
                persisted = row.get('persisted')
                persisted_same = persisted is not None and _same_text(persisted, target, spec)
                running_same = _same_value(running, target, spec)
                entry['before'] = persisted if persisted is not None else row.get('value')
                if persisted_same and not running_same and (row.get('source') or 'DYNAMIC').upper() != 'DYNAMIC':
                    # persisted already, and the running value was not set at runtime: SET PERSIST_ONLY of a
                    # read-only variable, waiting for a restart (SET PERSIST again would be refused, and
                    # SET PERSIST_ONLY again would report a change on every run)
                    entry.update({'context': 'restart', 'set_global': False, 'restart': True})
                else:
                    entry.update({'context': 'persisted', 'set_global': not (running_same and persisted_same),
                                  'restart': False})
            entry['change'] = entry['set_global'] or entry['write_file']
            plan.append(entry)
        return plan

    def setting_statement(self, entry, persist_only=False):
        """``(sql, params)`` for one variable."""
        if self.is_mariadb:
            verb = 'SET GLOBAL'
        else:
            verb = 'SET PERSIST_ONLY' if persist_only else 'SET PERSIST'
        return ('%s %s = %%s' % (verb, self.quote_ident(entry['name'])),
                (sql_value(entry['target'], entry['vartype']),))

    def apply_settings(self, plan, reload=True, option_file=None):
        """SET GLOBAL / SET PERSIST what differs; write the managed option-file block on MariaDB."""
        warnings = [entry['warning'] for entry in plan if entry.get('warning')]
        for entry in plan:
            if not entry['set_global']:
                continue
            sql, params = self.setting_statement(entry)
            if self.is_mariadb or self.check_mode:
                self.execute(sql, params, operation='change setting %s' % entry['name'])
                continue
            try:
                self.execute(sql, params, operation='change setting %s' % entry['name'])
            except DbError as exc:
                if 'read only' not in str(exc).lower() and str(_ER_READ_ONLY_VARIABLE) not in str(exc):
                    raise
                self.queries.pop()
                sql, params = self.setting_statement(entry, persist_only=True)
                self.execute(sql, params, operation='change setting %s' % entry['name'])
                entry['restart'] = True
                entry['context'] = 'restart'
        file_changed = False
        if option_file and any(entry['write_file'] for entry in plan):
            text = self._read_option_file(option_file)
            block = read_managed_block(text)
            for entry in plan:
                block[entry['name']] = option_text(entry['target'], entry['vartype'])
            new_text = write_managed_block(text, block, self.option_file_section())
            file_changed = new_text != text
            if file_changed and not self.check_mode:
                try:
                    replace_file(option_file, new_text)
                except OSError as exc:
                    raise DbError('write option file', option_file, exc.strerror) from None
        if not self.check_mode:
            current = self.settings_catalog([e['name'] for e in plan if e['set_global']])
            for entry in plan:
                if not entry['set_global'] or entry['name'] not in current or entry.get('hidden') \
                        or current[entry['name']].get('value') == MASK:
                    continue
                spec = mariadb_variable_spec(current[entry['name']]) if self.is_mariadb \
                    else inferred_variable_spec(current[entry['name']].get('value'), entry['target'])
                try:
                    now = _units.normalize(current[entry['name']].get('value'), **spec)
                except ValueError:
                    now = current[entry['name']].get('value')
                if not entry['restart'] and not _same_value(now, entry['target'], spec):
                    warnings.append('the server adjusted %s to %s (asked %s); use that value to stay idempotent'
                                    % (entry['name'], current[entry['name']].get('value'), entry['after']))
        pending = sorted(entry['name'] for entry in plan if entry['restart'])
        return {'pending_restart': pending, 'warnings': warnings, 'option_file_changed': file_changed}


# Variables holding a secret, which MariaDB shows as ******** once set: name -> the secret inside its value
SECRET_SETTINGS = {
    'wsrep_sst_auth': lambda value: value.split(':', 1)[1] if ':' in value else value,  # user:password
}


def setting_secrets(name, value):
    """The secret inside the value of a variable of SECRET_SETTINGS (nothing for any other)."""
    if name not in SECRET_SETTINGS or not isinstance(value, str) or not value or value == MASK:
        return []
    secret = SECRET_SETTINGS[name](value.strip().strip('"\''))
    return [secret] if secret else []


def _same_value(current, target, spec):
    """A flag set (optimizer_switch) is the same when the flags asked for have their states: the server
    keeps the others."""
    if spec['vartype'] == 'flagset':
        return _units.same_flags(current, target)
    return _units.same(current, target)


def _same_text(text, target, spec):
    try:
        return _same_value(_units.normalize(text, **spec), target, spec)
    except ValueError:
        return False
