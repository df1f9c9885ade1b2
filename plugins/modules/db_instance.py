#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_instance
short_description: Initialize, start, stop, restart, reload or remove a local PostgreSQL or MariaDB/MySQL instance
description:
  - Manages one database server instance on the managed host, identified by its data directory, without connecting
    to it.
  - PostgreSQL through C(initdb) and C(pg_ctl), run as the instance's OS user. The socket and the server log
    (C(log/server.log)) live inside the data directory; the listen address, port, socket directory and O(settings)
    are written to C(postgresql.auto.conf) at initialization. Local (socket) connections are trusted, which is safe
    because only the OS user and root can enter the data directory; TCP connections need a password
    (SCRAM-SHA-256).
  - MariaDB through C(mariadb-install-db) and C(mariadbd), MySQL 8 through C(mysqld --initialize-insecure) and
    C(mysqld). The instance has its own option file C(my.cnf) in the data directory, read with C(--defaults-file)
    so that no system option file interferes, and its socket C(mysqld.sock), pid file C(mysqld.pid) and error log
    C(error.log) there too. The server runs detached as the OS user and is stopped with SIGTERM.
  - Check mode changes nothing and returns the commands that would run.
  - A data directory that is not empty and holds no instance of O(engine), or a port already used by another
    process, fails before anything is changed.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.attributes
attributes:
  idempotent:
    description: A second run with the same arguments reports no change, except O(state=restarted) and O(state=reloaded).
    support: partial
options:
  engine:
    description:
      - The server family. V(mariadb) is an alias of V(mysql); whether MariaDB or MySQL runs is read from the server
        program itself.
    type: str
    required: true
    choices: [postgresql, mysql, mariadb]
    aliases: [db_engine]
  data_dir:
    description:
      - The instance's data directory. It is created when missing; an existing one must be empty or hold an instance
        of O(engine).
      - Keep it short, the socket inside it must fit in 107 bytes.
    type: path
    required: true
  port:
    description:
      - TCP port of the instance (1 to 65535), written at initialization. Defaults to V(5432) (PostgreSQL) or V(3306)
        (MySQL).
      - For an existing instance the port is read from its configuration; asking for another one fails (change it
        with M(dbops.admin.db_config) and restart).
    type: int
  state:
    description:
      - V(initialized) creates the instance if needed and leaves it as it is (a new one is not started).
      - V(started) initializes if needed and starts it; V(stopped) stops it (an instance that does not exist is left
        alone with a warning).
      - V(restarted) stops and starts a running instance; V(reloaded) makes a running instance re-read its configuration
        (C(pg_ctl reload); SIGHUP on MariaDB/MySQL, which flushes privileges, logs and caches). Both start an instance
        that is not running, and always report a change when they act.
      - V(absent) stops the instance; it removes the data directory only with O(force=true), otherwise the data is
        kept and a warning says so.
    type: str
    choices: [initialized, started, stopped, restarted, reloaded, absent]
    default: started
  bind_address:
    description:
      - Address the server listens on, written at initialization (C(listen_addresses) / C(bind-address)).
      - PostgreSQL's C(pg_hba.conf) admits TCP clients from the loopback addresses only; open others with your own
        C(pg_hba.conf).
    type: str
    default: 127.0.0.1
  os_user:
    description:
      - OS user that owns the data directory and runs the server.
      - When the module runs as root, defaults to the owner of an existing data directory (unless root owns it), else
        to V(postgres) or V(mysql). Otherwise defaults to the user running the module.
    type: str
  bin_dir:
    description:
      - Directory of the server programs.
      - Found automatically when omitted. PostgreSQL uses the programs of the data directory's major version when
        present, then C(pg_config --bindir), then the newest C(/usr/lib/postgresql/*/bin). MySQL/MariaDB looks for
        C(mariadbd) or C(mysqld) in the PATH and C(/usr/sbin).
    type: path
  settings:
    description:
      - Server settings written once, at initialization, to C(postgresql.auto.conf) or to the instance's C(my.cnf)
        (V(null) or an empty value writes a bare option, e.g. C(skip-name-resolve)).
      - They are not compared afterwards; change the settings of an existing instance with M(dbops.admin.db_config).
      - What the module writes from its own options is refused here (C(port), C(listen_addresses) / C(bind-address),
        C(unix_socket_directories), C(datadir), C(socket), C(pid-file), C(log-error)); use O(port), O(bind_address)
        and O(data_dir).
    type: dict
    default: {}
  superuser_password:
    description:
      - Password of the superuser, set at initialization only.
      - PostgreSQL (superuser C(postgres)) gets it through C(initdb --pwfile), hashed with SCRAM-SHA-256.
      - MariaDB gives it to C(root@localhost) and C(root@127.0.0.1) (as a C(mysql_native_password) hash, and drops
        the other root accounts); MySQL 8 to C(root@localhost) and C(root@127.0.0.1).
      - Without it, PostgreSQL accepts no TCP login until a password is set, and MariaDB's root logs in through the
        socket as the OS root user only.
    type: str
  force:
    description: With O(state=absent), also remove the data directory and everything in it.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the server to start or stop.
    type: int
    default: 120
  login_host:
    description: Accepted so that C(module_defaults) for C(group/dbops.admin.db) apply to this module; not used.
    type: str
    aliases: [host]
  login_port:
    description: Accepted for C(module_defaults) of the group; not used (see O(port)).
    type: int
  login_user:
    description: Accepted for C(module_defaults) of the group; not used.
    type: str
    aliases: [login]
  login_password:
    description: Accepted for C(module_defaults) of the group; not used (see O(superuser_password)).
    type: str
  login_db:
    description: Accepted for C(module_defaults) of the group; not used.
    type: str
    aliases: [login_database]
  login_unix_socket:
    description: Accepted for C(module_defaults) of the group; not used.
    type: str
  connect_timeout:
    description: Accepted for C(module_defaults) of the group; not used.
    type: int
    default: 10
  ssl_mode:
    description: Accepted for C(module_defaults) of the group; not used.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_ca:
    description: Accepted for C(module_defaults) of the group; not used.
    type: path
  ssl_cert:
    description: Accepted for C(module_defaults) of the group; not used.
    type: path
  ssl_key:
    description: Accepted for C(module_defaults) of the group; not used.
    type: path
notes:
  - The module runs on the host of the instance and needs no database driver.
  - PostgreSQL refuses to run as root; running the module as root lets it act as O(os_user) through C(runuser).
seealso:
  - module: dbops.admin.db_config
  - module: dbops.admin.db_info
'''

EXAMPLES = r'''
- name: A PostgreSQL 15 instance on port 55432 with a superuser password
  dbops.admin.db_instance:
    engine: postgresql
    data_dir: /srv/pg/app
    port: 55432
    superuser_password: "{{ vault_pg_superuser_password }}"
    settings:
      shared_buffers: 256MB
      shared_preload_libraries: pg_stat_statements

- name: A MariaDB instance, initialized but not started
  dbops.admin.db_instance:
    engine: mariadb
    data_dir: /srv/mariadb/app
    port: 53306
    state: initialized
    superuser_password: "{{ vault_mariadb_root_password }}"
    settings:
      innodb_buffer_pool_size: 256M
      skip-name-resolve:

- name: Re-read postgresql.conf
  dbops.admin.db_instance:
    engine: postgresql
    data_dir: /srv/pg/app
    state: reloaded

- name: Stop the instance and delete its data
  dbops.admin.db_instance:
    engine: mariadb
    data_dir: /srv/mariadb/app
    state: absent
    force: true
'''

RETURN = r'''
state:
  description: State of the instance after the run (predicted in check mode).
  returned: always
  type: str
  sample: started
data_dir:
  description: Absolute path of the data directory.
  returned: always
  type: str
  sample: /srv/pg/app
port:
  description: TCP port of the instance.
  returned: always
  type: int
  sample: 55432
pid:
  description: Process id of the running server (postmaster / mariadbd), null when it is not running or in check mode.
  returned: always
  type: int
  sample: 41235
socket:
  description:
    - Where local clients connect, as O(login_unix_socket) takes it. PostgreSQL, the socket directory; MySQL, the
      socket file.
  returned: always
  type: str
  sample: /srv/pg/app
version:
  description: Version of the server programs (null when they cannot be found).
  returned: always
  type: str
  sample: '15.18'
flavor:
  description: V(postgresql), V(mariadb) or V(mysql).
  returned: always
  type: str
  sample: postgresql
log_file:
  description: The server log of the instance.
  returned: always
  type: str
  sample: /srv/pg/app/log/server.log
config_file:
  description: The file the settings were written to at initialization (C(postgresql.auto.conf) or C(my.cnf)).
  returned: always
  type: str
  sample: /srv/pg/app/postgresql.auto.conf
actions:
  description: What was done (or, in check mode, would be), in order.
  returned: always
  type: list
  elements: str
  sample: [initialize, start]
commands:
  description: Commands run (or, in check mode, that would be) and files written, secrets masked.
  returned: always
  type: list
  elements: str
  sample: ["runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/pg/app -l /srv/pg/app/log/server.log -w -t 120 start"]
queries:
  description: SQL run at initialization (the MariaDB/MySQL root accounts), secrets masked.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import connection_argument_spec  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._diff import DifferenceTracker  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_instance import MysqlInstance  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_instance import (  # noqa: E402
    PostgresInstance, STATES, plan_actions, predicted_state)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, mask_secrets  # noqa: E402


def instance_for(params, runner=None):
    if params['engine'] == 'postgresql':
        return PostgresInstance(params, runner)
    return MysqlInstance(params, runner)


def shown(info):
    """The part of the instance's state that --diff shows."""
    return {'state': info['state'], 'data_dir': info['data_dir'],
            'port': info['port'] if info['state'] != 'absent' else None}


def converge(module, instance):
    params = module.params
    tracker = DifferenceTracker()
    current = instance.status()
    actions = plan_actions(params['state'], current['state'], params['force'])
    instance.check(actions, current)
    for action in actions:
        instance.perform(action, module.check_mode)
        if action in ('restart', 'reload'):
            tracker.action(action)

    if actions and not module.check_mode:
        after = instance.status()
    else:
        after = dict(current, state=predicted_state(current['state'], actions))
        if after['state'] != 'started':
            after['pid'] = None
    tracker.add('state', current['state'], after['state'])
    tracker.add('port', shown(current)['port'], shown(after)['port'])

    if params['state'] == 'absent' and not params['force'] and after['state'] != 'absent':
        module.warn('the data directory %s was kept; force: true removes it' % instance.data_dir)
    if params['state'] == 'stopped' and current['state'] == 'absent':
        module.warn('there is no instance in %s; nothing to stop' % instance.data_dir)
    try:
        version = instance.version()
    except DbError:
        version = None
    result = {
        'changed': tracker.changed or bool(actions),
        'state': after['state'],
        'data_dir': instance.data_dir,
        'port': after['port'],
        'pid': after['pid'],
        'socket': after['socket'],
        'version': version,
        'flavor': instance.flavor,
        'log_file': after['log_file'],
        'config_file': after['config_file'],
        'actions': actions,
        'commands': instance.commands,
        'queries': instance.queries,
    }
    if module._diff:
        result['diff'] = {'before': shown(current), 'after': shown(after)}
    return result


def main():
    # the connection options of the action group are accepted (and unused), so module_defaults for
    # group/dbops.admin.db apply; login_port loses its 'port' alias, which is this module's own option
    argument_spec = connection_argument_spec()
    argument_spec['login_port'] = dict(type='int')
    argument_spec.update(
        data_dir=dict(type='path', required=True),
        port=dict(type='int'),
        state=dict(type='str', default='started', choices=list(STATES)),
        bind_address=dict(type='str', default='127.0.0.1'),
        os_user=dict(type='str'),
        bin_dir=dict(type='path'),
        settings=dict(type='dict', default={}),
        superuser_password=dict(type='str', no_log=True),
        force=dict(type='bool', default=False),
        timeout=dict(type='int', default=120),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    params = dict(module.params, engine='postgresql' if module.params['engine'] == 'postgresql' else 'mysql')
    secrets = [params.get('superuser_password')]
    instance = None
    try:
        instance = instance_for(params)
        result = converge(module, instance)
    except DbError as exc:
        masker = instance.mask if instance is not None else (lambda text: mask_secrets(text, secrets))
        module.fail_json(msg=masker(str(exc)), commands=instance.commands if instance else [],
                         queries=instance.queries if instance else [])
    except Exception as exc:  # pylint: disable=broad-except
        masker = instance.mask if instance is not None else (lambda text: mask_secrets(text, secrets))
        module.fail_json(msg=masker('unexpected error: %s' % exc),
                         commands=instance.commands if instance else [])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
