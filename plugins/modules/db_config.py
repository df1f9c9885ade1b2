#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_config
short_description: Manage server settings of PostgreSQL, MySQL and MariaDB
description:
  - Sets server configuration parameters durably and reports which of them wait for a restart.
  - On PostgreSQL each setting is written with C(ALTER SYSTEM) (into C(postgresql.auto.conf)) and the configuration
    is reloaded with C(pg_reload_conf()).
  - On MySQL 8 each variable is written with C(SET PERSIST), or C(SET PERSIST_ONLY) when the server refuses to change
    a read-only variable at run time.
  - On MariaDB, which has no C(SET PERSIST), a dynamic variable is changed with C(SET GLOBAL) and, when O(option_file)
    is given, also written into a block of that option file that this module owns, so that it survives a restart.
    A variable that is not dynamic can only be written to the option file.
  - Values are compared after normalisation, so V(128MB) equals V(131072kB), V(1GB) equals V(1024MB), V(on) equals
    V(true) and V(1), and enumerations compare without regard to case. A second run with the same values reports no
    change.
  - Every name and value is checked against the server's catalog (C(pg_settings), C(information_schema.SYSTEM_VARIABLES))
    before anything is written; an unknown name or an invalid value fails with nothing changed.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes
options:
  settings:
    description:
      - Settings to apply, as a dictionary of name to value.
      - Memory and time values may carry a unit (V(256MB), V(5min)); a bare number is taken in the setting's own unit,
        as the server does (C(shared_buffers=1024) means 1024 pages of 8kB on PostgreSQL, bytes on MySQL).
      - MySQL and MariaDB sizes also accept the option-file suffixes V(K), V(M), V(G).
    type: dict
    required: true
  reload:
    description:
      - On PostgreSQL, reload the configuration with C(pg_reload_conf()) after a change, so that settings that do not
        need a restart take effect.
      - A requested value that the configuration files already hold but the server does not run yet (written with
        V(false) earlier) is then reloaded too, and reported as a change.
      - Ignored on MySQL and MariaDB, where C(SET GLOBAL) and C(SET PERSIST) take effect at once.
    type: bool
    default: true
  option_file:
    description:
      - MariaDB only. The instance's own option file, for example
        C(/etc/mysql/mariadb.conf.d/50-server.cnf) or the C(--defaults-file) of the instance.
      - The module keeps its settings in a block of this file delimited by C(# BEGIN dbops.admin db_config managed
        settings) and C(# END ...) lines, under its own C([mariadbd]) section header, placed at the end so that it
        wins over earlier lines. Lines outside the block are never touched. The file is created when missing.
      - Required on MariaDB for variables that are not dynamic; without it a dynamic variable is changed with
        C(SET GLOBAL) only and a warning says that it will not survive a restart.
      - The module must run on the database host for this file to be the server's.
      - Given for a PostgreSQL server (settings kept by C(ALTER SYSTEM)) or a MySQL 8 server (settings kept by
        C(SET PERSIST)), the task fails before anything changes.
    type: path
notes:
  - C(ALTER SYSTEM) needs a superuser (or, from PostgreSQL 15, the C(ALTER SYSTEM) privilege on the parameter);
    C(SET GLOBAL) and C(SET PERSIST) need C(SUPER) or C(SYSTEM_VARIABLES_ADMIN).
  - Settings with context C(postmaster) on PostgreSQL, or read-only variables on MySQL and MariaDB, take effect only
    after a restart; use RV(restart_required) to notify a handler that restarts the server
    (for example with M(dbops.admin.db_instance)).
seealso:
  - module: dbops.admin.db_info
'''

EXAMPLES = r'''
- name: Tune memory and logging on PostgreSQL
  dbops.admin.db_config:
    engine: postgresql
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    settings:
      shared_buffers: 1GB
      work_mem: 16MB
      log_min_duration_statement: 1s
  register: pg_config
  notify: Restart PostgreSQL

- name: Show what would change, without changing it
  dbops.admin.db_config:
    engine: postgresql
    settings:
      max_connections: 200
  check_mode: true
  diff: true

- name: Raise max_connections on MariaDB and keep it across restarts
  dbops.admin.db_config:
    engine: mariadb
    login_user: root
    login_password: "{{ vault_mariadb_password }}"
    option_file: /etc/mysql/mariadb.conf.d/60-dbops.cnf
    settings:
      max_connections: 300
      innodb_buffer_pool_size: 2G
      slow_query_log: true
'''

RETURN = r'''
settings:
  description:
    - One entry per requested setting, keyed by its catalog name.
    - C(before) is the configured value before the run (the configuration file's value on PostgreSQL when there is one,
      the managed option-file value or the running value on MariaDB); C(after) is the value asked for, normalised.
    - C(context) is PostgreSQL's context (V(postmaster) means a restart is needed) or, on MySQL and MariaDB,
      V(dynamic), V(restart) or V(persisted).
  returned: always
  type: dict
  sample:
    shared_buffers: {before: 128MB, after: 256MB, unit: 8kB, context: postmaster, changed: true, pending_restart: true}
restart_required:
  description: Whether a requested setting takes effect only after the server is restarted.
  returned: always
  type: bool
pending_restart:
  description:
    - Names of the settings that still wait for a restart after this run (on PostgreSQL, every setting of the server
      flagged C(pending_restart) in C(pg_settings), plus the requested ones that need it).
  returned: always
  type: list
  elements: str
option_file:
  description: The option file written (MariaDB/MySQL), and whether it changed.
  returned: when O(option_file) is given
  type: dict
  sample: {path: /etc/mysql/mariadb.conf.d/60-dbops.cnf, changed: true}
queries:
  description: Statements executed (or, in check mode, that would be), secrets masked.
  returned: always
  type: list
  elements: str
  sample: ["ALTER SYSTEM SET \"work_mem\" = '16MB'", "SELECT pg_reload_conf()"]
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import (  # noqa: E402
    connection_argument_spec, run_module)
from ansible_collections.dbops.admin.plugins.module_utils._diff import DifferenceTracker  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_settings import setting_secrets  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_settings import (  # noqa: E402
    CONNINFO_SETTINGS, conninfo_passwords)


class SettingsModule(AnsibleModule):
    """AnsibleModule knowing the secrets inside settings (the password of primary_conninfo, of wsrep_sst_auth)
    as soon as it has read its arguments, before it logs the invocation or reports an argument error
    (settings is a free dict: no no_log per key)."""

    def _load_params(self):
        super()._load_params()
        settings = self.params.get('settings') if isinstance(self.params, dict) else None
        if isinstance(settings, dict):
            for name, value in settings.items():
                key = str(name).strip().lower()
                if key in CONNINFO_SETTINGS:
                    self.no_log_values.update(conninfo_passwords(value))
                self.no_log_values.update(setting_secrets(key, value))


def converge(module, engine):
    option_file = module.params['option_file']
    plan = engine.plan_settings(module.params['settings'], option_file=option_file, reload=module.params['reload'])
    tracker = DifferenceTracker()

    def shown(value):
        # a secret inside a value (the password of primary_conninfo) is masked, as in queries
        return engine.mask(value) if isinstance(value, str) else value

    for entry in plan:
        differs = tracker.add(entry['name'], shown(entry['before']),
                              shown(entry['after'] if entry['change'] else entry['before']))
        if entry['change'] and not differs:
            # same value, but not yet where it lasts (persisted, or in the option file)
            tracker.action('persist %s' % entry['name'])
    outcome = engine.apply_settings(plan, reload=module.params['reload'], option_file=option_file)
    for text in outcome['warnings']:
        module.warn(engine.mask(text))
    if engine.flavor == 'mariadb' and not option_file and any(e['set_global'] for e in plan):
        module.warn('no option_file given: the changed variables are set with SET GLOBAL only and '
                    'will return to their configured values at the next restart')
    pending = outcome['pending_restart']
    settings = {}
    for entry in plan:
        settings[entry['name']] = {
            'before': shown(entry['before']),
            'after': shown(entry['after']),
            'unit': entry['unit'],
            'context': entry['context'],
            'changed': entry['change'],
            'pending_restart': entry['name'] in pending,
        }
    result = {
        'changed': tracker.changed or outcome['option_file_changed'],
        'settings': settings,
        'restart_required': any(entry['restart'] for entry in plan),
        'pending_restart': pending,
    }
    if option_file:
        result['option_file'] = {'path': option_file, 'changed': outcome['option_file_changed']}
    if module._diff:
        result['diff'] = tracker.diff()
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        settings=dict(type='dict', required=True),
        reload=dict(type='bool', default=True),
        option_file=dict(type='path'),
    )
    module = SettingsModule(argument_spec, supports_check_mode=True)
    if not module.params['settings']:
        module.fail_json(msg='settings is empty: give at least one name: value', queries=[])
    run_module(module, lambda engine: converge(module, engine))


if __name__ == '__main__':
    main()
