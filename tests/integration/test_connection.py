# -*- coding: utf-8 -*-
"""The connection layer against real servers: flavour, version, errors without secrets."""

from __future__ import annotations

import os
import pwd
import shutil

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._connection import connect_params
from ansible_collections.dbops.admin.plugins.module_utils._engines._base import Secret
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


def test_connect_reads_flavor_and_version(server):
    engine = connect_params(server.conn)
    try:
        expected = 'postgresql' if server.engine == 'postgresql' else 'mariadb'
        assert engine.flavor == expected
        assert engine.version_num > 100000
        assert engine.version.split('.')[0].isdigit()
    finally:
        engine.close()


def test_wrong_password_names_authentication_and_hides_password(server):
    params = dict(server.conn, login_password='Wrong-Pass-7781')
    with pytest.raises(DbError) as info:
        connect_params(params)
    text = str(info.value)
    assert 'Wrong-Pass-7781' not in text
    assert 'could not connect to' in text
    assert str(server.port) in text
    assert 'authentication failed' in text


def test_unreachable_port_is_a_clear_error(server):
    from servers import free_port
    params = dict(server.conn, login_port=free_port(), connect_timeout=2)
    with pytest.raises(DbError) as info:
        connect_params(params)
    assert 'could not connect to' in str(info.value)


def test_secret_parameters_are_masked_in_queries(server):
    engine = connect_params(server.conn)
    try:
        engine.execute('SELECT %s', (Secret('Very-Secret-99'),))
        assert engine.queries == ["SELECT '********'"]
    finally:
        engine.close()


def test_failed_statement_message_has_no_secret(server):
    engine = connect_params(server.conn)
    try:
        with pytest.raises(DbError) as info:
            engine.execute('SELECT no_such_column_x, %s', (Secret('Hidden-Value-55'),))
        assert 'Hidden-Value-55' not in str(info.value)
        assert 'no_such_column_x' in str(info.value)
    finally:
        engine.close()


def test_hostile_identifier_is_quoted_literally(server):
    engine = connect_params(server.conn)
    hostile = 'x"; DROP TABLE t; --`'
    try:
        quoted = engine.quote_ident(hostile)
        assert engine.fetch_value('SELECT 1 AS %s' % quoted) == 1
    finally:
        engine.close()


def test_connect_timeout_covers_a_listener_that_never_answers(server):
    """A port that accepts TCP but never speaks (a stopped server, a proxy without a backend):
    connect_timeout bounds the whole connect, handshake included, on both engines."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(5)
    accepted = []

    def accept_and_stay_silent():
        listener.settimeout(30)
        try:
            accepted.append(listener.accept()[0])
        except OSError:
            pass

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    params = dict(server.conn, login_port=listener.getsockname()[1], connect_timeout=2)
    start = time.monotonic()
    # without a bound the client would wait forever: the silent peer gives up after 30 s at most
    timer = threading.Timer(30, lambda: [c.close() for c in accepted] + [listener.close()])
    timer.start()
    try:
        with pytest.raises(DbError) as info:
            connect_params(params)
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
        for conn in accepted:
            conn.close()
        listener.close()
    assert elapsed < 10, 'connect took %.1f s with connect_timeout=2' % elapsed
    text = str(info.value)
    assert 'could not connect to' in text
    assert 'timeout' in text or 'timed out' in text


def test_connect_timeout_does_not_bound_statements(server):
    engine = connect_params(dict(server.conn, connect_timeout=1))
    try:
        sleep = 'SELECT pg_sleep(2.5)' if server.engine == 'postgresql' else 'SELECT SLEEP(2.5)'
        engine.execute(sleep)
        assert engine.fetch_value('SELECT 1') == 1
    finally:
        engine.close()


def test_postgresql_socket_error_names_the_socket_file(pg_server):
    """The directory exists; the socket of the asked port does not: the message names that file."""
    from servers import free_port
    port = free_port()
    params = dict(pg_server.conn, login_host=None, login_unix_socket=pg_server.socket_dir, login_port=port)
    with pytest.raises(DbError) as info:
        connect_params(params)
    assert 'postgresql at socket %s/.s.PGSQL.%d:' % (pg_server.socket_dir, port) in str(info.value)
    # the right port through the same directory connects
    connect_params(dict(params, login_port=pg_server.port)).close()


def _tls_files(directory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def cert(subject, key, issuer, issuer_key, ca=False, san=None):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(filename, data):
        path = os.path.join(directory, filename)
        with open(path, 'wb') as handle:
            handle.write(data)
        os.chmod(path, 0o644)
        return path

    def key_pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    files = {}
    for prefix in ('', 'other_'):
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca = cert(prefix + 'dbops test CA', ca_key, prefix + 'dbops test CA', ca_key, ca=True)
        files[prefix + 'ca'] = write(prefix + 'ca.pem', ca.public_bytes(serialization.Encoding.PEM))
        if prefix:
            break
        for role, san in (('server', [x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                          ('client', None)):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            files[role + '_key'] = write(role + '-key.pem', key_pem(key))
            files[role + '_cert'] = write(role + '.pem', cert('dbops ' + role, key, 'dbops test CA', ca_key, san=san)
                                          .public_bytes(serialization.Encoding.PEM))
    return files


@pytest.fixture(scope='module')
def tls_mariadb():
    from servers import MariadbServer, make_workdir
    workdir = make_workdir('dbops-tls-', 'mysql' if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name)
    files = _tls_files(workdir)
    server = MariadbServer(settings={'ssl-ca': files['ca'], 'ssl-cert': files['server_cert'],
                                     'ssl-key': files['server_key']}).init().start()
    server.sql("CREATE USER 'dbops_x509'@'%' IDENTIFIED BY 'X509-Pass-1' REQUIRE X509")
    try:
        yield server, files
    finally:
        server.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def _cipher(engine):
    return engine.fetch_all("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0]['Value']


def test_mysql_tls_modes_against_a_tls_server(tls_mariadb):
    """verify-ca/verify-full use ssl_ca (and the client certificate), disable turns TLS off."""
    server, files = tls_mariadb
    for mode in ('verify-ca', 'verify-full'):
        engine = connect_params(dict(server.conn, ssl_mode=mode, ssl_ca=files['ca']))
        try:
            assert _cipher(engine)
        finally:
            engine.close()
    # the certificate is checked: another CA does not vouch for it
    with pytest.raises(DbError) as info:
        connect_params(dict(server.conn, ssl_mode='verify-ca', ssl_ca=files['other_ca']))
    assert 'certificate verify failed' in str(info.value)
    # an account that requires a client certificate gets it with the CA check on
    engine = connect_params(dict(server.conn, login_user='dbops_x509', login_password='X509-Pass-1',
                                 ssl_mode='verify-ca', ssl_ca=files['ca'], ssl_cert=files['client_cert'],
                                 ssl_key=files['client_key']))
    try:
        assert _cipher(engine)
    finally:
        engine.close()
    engine = connect_params(dict(server.conn, ssl_mode='require'))
    try:
        assert _cipher(engine)
    finally:
        engine.close()
    engine = connect_params(dict(server.conn, ssl_mode='disable'))
    try:
        assert _cipher(engine) == ''
    finally:
        engine.close()
