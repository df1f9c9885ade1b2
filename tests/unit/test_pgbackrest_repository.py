# -*- coding: utf-8 -*-
"""pgBackRest repository checks that need no server: a moved repository's archive_command, a stanza of another
cluster, the shell quoting of restore_command, the paths every pgbackrest command is given."""

from __future__ import annotations

import os
import shlex

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pb
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


def test_argv_names_the_repository_where_it_is_now():
    argv = pb.pgbackrest_argv('/new/repo', 'info', '--output=json')
    assert '--repo1-path=/new/repo/pgbackrest' in argv and '--log-path=/new/repo/pgbackrest/log' in argv
    assert '--lock-path=/new/repo/pgbackrest/lock' in argv and argv[-1] == 'info'
    # pgBackRest refuses --lock-path on the command line of verify
    assert not any(a.startswith('--lock-path') for a in pb.pgbackrest_argv('/new/repo', 'verify'))


def test_archive_command_of_a_moved_repository_is_ours_and_replaced(tmp_path):
    old, new = str(tmp_path / "old repo"), str(tmp_path / 'new')
    command = pb.pgbackrest_archive_command(old)
    assert pb.pgbackrest_command_config(command) == os.path.join(old, 'pgbackrest', 'pgbackrest.conf')
    assert pb.pgbackrest_moved_from(command, new) == old   # its configuration is gone
    settings = {'archive_mode': 'on', 'archive_command': command}
    pb._refuse_foreign_archiving(settings, 'pgbackrest', None, new)   # not refused
    os.makedirs(os.path.join(old, 'pgbackrest'))
    open(os.path.join(old, 'pgbackrest', 'pgbackrest.conf'), 'w').close()
    assert pb.pgbackrest_moved_from(command, new) is None   # another repository, still there
    with pytest.raises(DbError, match='archiving goes elsewhere .*old repo'):
        pb._refuse_foreign_archiving(settings, 'pgbackrest', None, new)
    for foreign in ('cp %p /x/%f', 'pgbackrest --config=/x/pgbackrest/pgbackrest.conf --stanza=main archive-push %p'):
        assert pb.pgbackrest_command_config(foreign) is None
        with pytest.raises(DbError, match='archiving goes elsewhere'):
            pb._refuse_foreign_archiving({'archive_mode': 'on', 'archive_command': foreign}, 'pgbackrest', None, new)


def _stanza(repo, system_id, pg_path):
    root = os.path.join(repo, 'pgbackrest')
    os.makedirs(os.path.join(root, 'backup', 'dbops'))
    with open(os.path.join(root, 'backup', 'dbops', 'backup.info'), 'w') as f:
        f.write('[backrest]\nbackrest-format=5\n\n[db]\ndb-catalog-version=202209061\ndb-id=1\n'
                'db-system-id=%s\ndb-version="15"\n\n[db:history]\n1={"db-system-id":%s}\n' % (system_id, system_id))
    with open(os.path.join(root, 'pgbackrest.conf'), 'w') as f:
        f.write('[global]\nrepo1-path=%s\n\n[dbops]\npg1-path=%s\n' % (root, pg_path))


def test_stanza_of_another_cluster(tmp_path):
    repo = str(tmp_path / 'repo')
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'PG_VERSION').write_text('15\n')
    _stanza(repo, '7713164653064945053', str(data))
    assert pb.pgbackrest_stanza_system_id(repo) == '7713164653064945053'
    assert pb.pgbackrest_foreign_stanza(repo, '7713164653064945053', str(data)) is None
    assert 'another cluster' in pb.pgbackrest_foreign_stanza(repo, '7713164659182214620', '/elsewhere')
    # the same system identifier from another data directory that still holds a cluster: a copy
    assert str(data) in pb.pgbackrest_foreign_stanza(repo, '7713164653064945053', str(tmp_path / 'copy'))
    # the configured data directory is gone: this cluster, moved
    (data / 'PG_VERSION').unlink()
    assert pb.pgbackrest_foreign_stanza(repo, '7713164653064945053', str(tmp_path / 'moved')) is None
    assert pb.pgbackrest_foreign_stanza(str(tmp_path / 'empty'), '1', '/x') is None


def test_restore_command_is_shell_quoted():
    repo = "/backups/o'brien repo"
    command = pb.pgbackrest_restore_command(repo, '/data/new dir')
    words = shlex.split(command.replace('%f', 'F').replace('"%p"', 'P'))
    assert words[:2] == ['pgbackrest', '--config=%s/pgbackrest/pgbackrest.conf' % repo]
    assert '--repo1-path=%s/pgbackrest' % repo in words and '--pg1-path=/data/new dir' in words
    assert words[-3:] == ['archive-get', 'F', 'P']


def test_unknown_os_user_is_refused():
    from ansible_collections.dbops.admin.plugins.module_utils import _backup_catalog as catalog
    with pytest.raises(DbError, match='no such OS user'):
        catalog.check_os_user('no_such_user_dbops')
    catalog.check_os_user('root')
    catalog.check_os_user(None)


def test_percent_in_the_repository_path_is_doubled_for_postgresql(tmp_path):
    """PostgreSQL replaces %p/%f/%r in archive_command and restore_command: a % of a path is written %%."""
    repo = str(tmp_path / 'repo%p 100%')
    command = pb.pgbackrest_archive_command(repo)
    assert 'repo%%p 100%%' in command and command.endswith(' archive-push %p')
    assert pb.pgbackrest_command_config(command) == os.path.join(repo, 'pgbackrest', 'pgbackrest.conf')
    assert pb.pgbackrest_moved_from(command, str(tmp_path / 'other')) == repo
    restore_command = pb.pgbackrest_restore_command(repo, '/data')
    assert 'repo%%p 100%%' in restore_command and restore_command.endswith(' archive-get %f "%p"')
