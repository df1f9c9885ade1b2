# -*- coding: utf-8 -*-
"""The physical MariaDB/MySQL backup hashes and page-checks each file while the tool copies the
next ones (mysql_backup._CopyFollower / _run_following), driven here by fake backup tools that
print mariadb-backup's and xtrabackup's log lines."""

from __future__ import annotations

import hashlib
import os
import sys
import textwrap

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def script(path, body):
    with open(path, 'w') as f:
        f.write('#!%s\n' % sys.executable + textwrap.dedent(body))
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture
def checker(tmp_path):
    """A fake innochecksum: records each file it checked (a marker beside it), fails on 'BAD'."""
    return script(tmp_path / 'fake-innochecksum', '''
        import sys
        path = sys.argv[1]
        with open(sys.argv[1], 'rb') as f:
            data = f.read()
        with open(%r, 'a') as log:
            log.write(path + '\\n')
        if b'BAD' in data:
            sys.stderr.write('Fail: page::3 invalid\\n')
            sys.exit(1)
    ''' % str(tmp_path / 'checked.log'))


def checked(tmp_path):
    try:
        with open(tmp_path / 'checked.log') as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_each_file_is_checked_while_the_tool_is_still_copying(tmp_path, checker):
    root = tmp_path / 'dest'
    target = root / 'data'
    (root / 'meta').mkdir(parents=True)
    tool = script(tmp_path / 'fake-backup', '''
        import os, sys, time
        target, log = sys.argv[1], sys.argv[2]
        os.makedirs(os.path.join(target, 'db'))
        first = os.path.join(target, 'db', 't1.ibd')
        with open(first, 'wb') as f:
            f.write(b'page' * 4096)
        print('[01] 2026-11-27 10:00:00 Copying ./db/t1.ibd to %s' % first, file=sys.stderr, flush=True)
        print('[01] 2026-11-27 10:00:00         ...done', file=sys.stderr, flush=True)
        # the follower must check t1.ibd before this copy ends
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(log) and first in open(log).read():
                break
            time.sleep(0.02)
        else:
            sys.exit(0)
        with open(os.path.join(target, 'db', 't2.ibd'), 'wb') as f:
            f.write(b'page' * 10)
        with open(os.path.join(target, 'xtrabackup_logfile'), 'wb') as f:
            f.write(b'redo')
        with open(os.path.join(sys.argv[3], 'xtrabackup_checkpoints'), 'w') as f:
            f.write('to_lsn = 5\\n')
    ''')
    follower = mb._CopyFollower(str(root), str(target), checker)
    mb._run_following([tool, str(target), str(tmp_path / 'checked.log'), str(root / 'meta')], follower,
                      'take a physical backup with', 'fake-backup')
    checksums, problems = follower.finish()
    assert problems == []
    # t2.ibd was only written after t1.ibd had been checked: the check ran during the copy
    assert os.path.exists(target / 'db' / 't2.ibd'), 'the follower did not check t1.ibd while the copy ran'
    assert checksums == {rel: sha(root / rel) for rel in
                         ('data/db/t1.ibd', 'data/db/t2.ibd', 'data/xtrabackup_logfile', 'meta/xtrabackup_checkpoints')}
    # every tablespace was page-checked once; the redo log and meta files are not tablespaces
    assert sorted(checked(tmp_path)) == sorted([str(target / 'db' / 't1.ibd'), str(target / 'db' / 't2.ibd')])


def test_files_changed_after_they_were_checked_or_never_reported_are_done_again(tmp_path, checker):
    root = tmp_path / 'dest'
    target = root / 'data'
    target.mkdir(parents=True)
    tool = script(tmp_path / 'fake-backup', '''
        import os, sys, time
        target, log = sys.argv[1], sys.argv[2]
        path = os.path.join(target, 't.ibd')
        with open(path, 'wb') as f:
            f.write(b'A' * 1000)
        print('[00] 2026-11-27 10:00:00 Copying ./t.ibd to %s' % path, file=sys.stderr, flush=True)
        print('[00] 2026-11-27 10:00:00         ...done', file=sys.stderr, flush=True)
        deadline = time.time() + 20
        while time.time() < deadline and not (os.path.exists(log) and path in open(log).read()):
            time.sleep(0.02)
        time.sleep(0.05)
        # copied again (a table changed by DDL during the backup): same size, other bytes
        with open(path, 'r+b') as f:
            f.write(b'BAD' + b'B' * 997)
        # never reported in the log
        with open(os.path.join(target, 'quiet.ibd'), 'wb') as f:
            f.write(b'C' * 10)
    ''')
    follower = mb._CopyFollower(str(root), str(target), checker)
    mb._run_following([tool, str(target), str(tmp_path / 'checked.log')], follower, 'take a physical backup with',
                      'fake-backup')
    checksums, problems = follower.finish()
    assert checksums == {'data/t.ibd': sha(target / 't.ibd'), 'data/quiet.ibd': sha(target / 'quiet.ibd')}
    # the second look at t.ibd found the damaged page the first one could not have seen
    assert problems == ['data/t.ibd: page checksum mismatch (innochecksum: Fail: page::3 invalid)']
    assert checked(tmp_path).count(str(target / 't.ibd')) == 2


def test_log_lines_of_both_tools_name_the_destination(tmp_path):
    root = tmp_path / 'dest'
    target = root / 'data'
    (target / 'a to b').mkdir(parents=True)
    for name in ('x.ibd', 'y.ibd', 'z.ibd'):
        (target / 'a to b' / name).write_bytes(name.encode())
    (tmp_path / 'elsewhere.ibd').write_bytes(b'e')
    follower = mb._CopyFollower(str(root), str(target), None)
    # mariadb-backup: two threads interleaved; a source path holding ' to '
    follower.line('[01] 2026-11-27 10:00:00 Copying ./a to b/x.ibd to %s' % (target / 'a to b' / 'x.ibd'))
    follower.line('[02] 2026-11-27 10:00:00 Copying ./a to b/y.ibd to %s' % (target / 'a to b' / 'y.ibd'))
    follower.line('[02] 2026-11-27 10:00:01         ...done')
    assert follower.pending == {'01': str(target / 'a to b' / 'x.ibd')}
    follower.line('[00] 2026-11-27 10:00:01         ...done')  # "Writing backup-my.cnf ...done": no copy pending
    follower.line('[01] 2026-11-27 10:00:02         ...done')
    # xtrabackup 8 names the destination on its "Done" line
    follower.line('2026-11-27T10:00:03.1+00:00 1 [Note] [MY-011825] [Xtrabackup] Done: Copying ./a to b/z.ibd to %s'
                  % (target / 'a to b' / 'z.ibd'))
    # a destination outside the backup is never touched
    follower.line('2026-11-27T10:00:03.1+00:00 1 [Note] [MY-011825] [Xtrabackup] Done: Copying x to %s'
                  % (tmp_path / 'elsewhere.ibd'))
    for future in follower.futures:
        future.result()
    assert sorted(follower.seen) == ['data/a to b/x.ibd', 'data/a to b/y.ibd', 'data/a to b/z.ibd']
    checksums, problems = follower.finish()
    assert sorted(checksums) == ['data/a to b/x.ibd', 'data/a to b/y.ibd', 'data/a to b/z.ibd'] and not problems


def test_finish_makes_every_file_and_directory_durable(tmp_path, monkeypatch):
    root = tmp_path / 'dest'
    (root / 'data' / 'db').mkdir(parents=True)
    (root / 'meta').mkdir()
    for rel in ('data/ibdata1', 'data/db/t.ibd', 'meta/xtrabackup_info'):
        (root / rel).write_bytes(b'x' * 10)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink('/proc/self/fd/%d' % fd))
        return real_fsync(fd)

    monkeypatch.setattr(mb.os, 'fsync', fsync)
    follower = mb._CopyFollower(str(root), str(root / 'data'), None)
    checksums, _problems = follower.finish()
    assert sorted(checksums) == ['data/db/t.ibd', 'data/ibdata1', 'meta/xtrabackup_info']
    expected = {str(root / rel) for rel in ('', 'data', 'data/db', 'meta', 'data/ibdata1', 'data/db/t.ibd',
                                            'meta/xtrabackup_info')}
    assert expected <= set(synced)


def test_without_hashes_nothing_is_hashed_or_synced(tmp_path, monkeypatch):
    # an encrypted backup: the catalog hashes and syncs the ciphertext, not this plaintext
    root = tmp_path / 'dest'
    (root / 'data').mkdir(parents=True)
    (root / 'data' / 't.ibd').write_bytes(b'x')
    monkeypatch.setattr(mb.os, 'fsync', lambda fd: pytest.fail('fsync of a plaintext copy'))
    follower = mb._CopyFollower(str(root), str(root / 'data'), None, hashes=False)
    assert follower.finish() == ({}, [])


def test_each_reported_file_is_sent_to_disk_as_soon_as_it_is_checked(tmp_path, monkeypatch):
    # the write-back of a finished file starts while the copy goes on (SYNC_FILE_RANGE_WRITE, no
    # wait), so the fsync before publication has little left to write
    root = tmp_path / 'dest'
    (root / 'data' / 'db').mkdir(parents=True)
    (root / 'data' / 'db' / 't.ibd').write_bytes(b'x' * 10)
    started = []
    monkeypatch.setattr(mb, '_SYNC_FILE_RANGE', [lambda fd, offset, nbytes, flags: started.append(
        (os.readlink('/proc/self/fd/%d' % fd), offset, nbytes, flags))])
    follower = mb._CopyFollower(str(root), str(root / 'data'), None)
    follower.line('[01] 2026-11-27 10:00:00 Copying ./db/t.ibd to %s' % (root / 'data' / 'db' / 't.ibd'))
    follower.line('[01] 2026-11-27 10:00:01         ...done')
    for future in follower.futures:
        future.result()
    assert started == [(str(root / 'data' / 'db' / 't.ibd'), 0, 0, 2)]
    follower.finish()


def test_write_back_of_a_plaintext_copy_or_a_vanished_file_is_not_started(tmp_path, monkeypatch):
    monkeypatch.setattr(mb, '_SYNC_FILE_RANGE', [lambda *args: pytest.fail('write-back started')])
    root = tmp_path / 'dest'
    (root / 'data').mkdir(parents=True)
    (root / 'data' / 't.ibd').write_bytes(b'x')
    follower = mb._CopyFollower(str(root), str(root / 'data'), None, hashes=False)
    follower._one(str(root / 'data' / 't.ibd'))
    follower.finish()
    mb._start_writeback(str(root / 'data' / 'gone.ibd'))


def test_start_writeback_works_on_this_system(tmp_path, monkeypatch):
    monkeypatch.setattr(mb, '_SYNC_FILE_RANGE', [])
    path = tmp_path / 'f'
    path.write_bytes(b'y' * 100000)
    mb._start_writeback(str(path))
    assert mb._SYNC_FILE_RANGE[0] is not None  # found in the C library (Linux)
    assert path.read_bytes() == b'y' * 100000


def test_a_failing_tool_is_reported_in_its_own_words_with_secrets_masked(tmp_path):
    root = tmp_path / 'dest'
    (root / 'data').mkdir(parents=True)
    tool = script(tmp_path / 'fake-backup', '''
        import sys
        print('[00] 2026-11-27 10:00:00 Connecting to MariaDB server host: 127.0.0.1', file=sys.stderr)
        print('[00] 2026-11-27 10:00:00 Error: Access denied for password Sekr1t-pw', file=sys.stderr)
        sys.exit(1)
    ''')
    follower = mb._CopyFollower(str(root), str(root / 'data'), None)
    with pytest.raises(DbError) as err:
        mb._run_following([tool], follower, 'take a physical backup with', 'fake-backup', ['Sekr1t-pw'])
    text = str(err.value)
    assert 'Access denied' in text and 'Sekr1t-pw' not in text


def test_a_file_removed_between_its_stat_and_its_read_is_left_to_finish(tmp_path, monkeypatch):
    # mariadb-backup removes its copy of a table dropped or rebuilt during the backup (DDL
    # tracking) while the follower may be about to hash it: the run goes on, as when the file is
    # already gone at the stat
    root = tmp_path / 'dest'
    target = root / 'data'
    target.mkdir(parents=True)
    (target / 'gone.ibd').write_bytes(b'g' * 100)
    (target / 'kept.ibd').write_bytes(b'k' * 100)
    real_state = mb._file_state

    def state_then_removed(path):
        state = real_state(path)
        if path.endswith('gone.ibd'):
            os.unlink(path)  # the tool's DDL handling, right after the follower's stat
        return state

    monkeypatch.setattr(mb, '_file_state', state_then_removed)
    follower = mb._CopyFollower(str(root), str(target), None)
    for name in ('gone.ibd', 'kept.ibd'):
        follower.line('[01] 2026-11-27 10:00:00 Copying ./db/%s to %s' % (name, target / name))
        follower.line('[01] 2026-11-27 10:00:00         ...done')
    checksums, problems = follower.finish()
    assert checksums == {'data/kept.ibd': sha(target / 'kept.ibd')} and problems == []


def test_a_failing_tool_is_not_reported_by_file_names_holding_error(tmp_path):
    # every server has sys.statements_with_errors_or_warnings: its copy lines are not the reason
    root = tmp_path / 'dest'
    (root / 'data' / 'sys').mkdir(parents=True)
    tool = script(tmp_path / 'fake-backup', '''
        import sys
        for name in ('statements_with_errors_or_warnings', 'x@0024statements_with_errors_or_warnings'):
            print('[01] 2026-11-27 10:00:00 Copying ./sys/%s.frm to %s/sys/%s.frm' % (name, sys.argv[1], name),
                  file=sys.stderr)
            print('[01] 2026-11-27 10:00:00         ...done', file=sys.stderr)
        for name in ('version', 'sys_config', 'session', 'processlist'):
            print('[01] 2026-11-27 10:00:00 Copying ./sys/%s.frm to %s/sys/%s.frm' % (name, sys.argv[1], name),
                  file=sys.stderr)
            print('[01] 2026-11-27 10:00:00         ...done', file=sys.stderr)
        print('[00] 2026-11-27 10:00:01 Retrying read of log at LSN=40581675', file=sys.stderr)
        print('[00] 2026-11-27 10:00:01 Was only able to copy log from 33973611 to 40581675, not 42072788',
              file=sys.stderr)
        print('mariabackup: Stopping log copying thread.', file=sys.stderr)
        sys.exit(1)
    ''')
    follower = mb._CopyFollower(str(root), str(root / 'data'), None)
    with pytest.raises(DbError) as err:
        mb._run_following([tool, str(root / 'data')], follower, 'take a physical backup with', 'fake-backup')
    text = str(err.value)
    assert 'Was only able to copy log' in text and 'statements_with_errors' not in text


def test_a_tool_killed_half_way_is_reported_killed(tmp_path):
    root = tmp_path / 'dest'
    (root / 'data').mkdir(parents=True)
    tool = script(tmp_path / 'fake-backup', '''
        import os, signal, sys
        print('[01] 2026-11-27 10:00:00 Copying ./big/b.ibd to %s/big/b.ibd' % sys.argv[1], file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    ''')
    follower = mb._CopyFollower(str(root), str(root / 'data'), None)
    with pytest.raises(DbError) as err:
        mb._run_following([tool, str(root / 'data')], follower, 'take a physical backup with', 'fake-backup')
    assert 'killed by signal 9 (SIGKILL)' in str(err.value)
