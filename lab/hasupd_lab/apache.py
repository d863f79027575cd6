"""apache configurations for the lab: one self-contained instance per node
(development only: not part of the product)."""

from __future__ import annotations

import os
from pathlib import Path

LAB_MODULES = ("mpm_event", "authz_core", "authz_host", "status", "mime", "dir")


def write_lab_config(dir: str | os.PathLike, listen: str, document_root: str | os.PathLike,
                     node_name: str, modules_dir: str = "/usr/lib/apache2/modules") -> str:
    """A self-contained apache configuration under ``dir`` (its own ServerRoot,
    PidFile, runtime dir, mutexes and logs, so instances run side by side),
    listening on ``listen`` (ADDR:PORT, or PORT for every address: then
    the default status URL on 127.0.0.1 answers too, and the VIP needs no
    ip_nonlocal_bind), serving ``document_root`` with an
    index.html naming the node, and /server-status (ExtendedStatus On) open
    to localhost and to anyone.  Returns the path of httpd.conf; the pidfile
    is DIR/httpd.pid.  Workers run as www-data: the document root must be
    readable by it."""
    base = Path(dir)
    run_dir = base / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    docroot = Path(document_root)
    docroot.mkdir(parents=True, exist_ok=True)
    index = docroot / "index.html"
    if not index.exists():
        index.write_text(f"<html><body><h1>{node_name}</h1></body></html>\n")
        index.chmod(0o644)
    user = "www-data" if _user_exists("www-data") else "daemon"
    loads = "\n".join(f"LoadModule {m}_module {modules_dir}/mod_{m}.so" for m in LAB_MODULES)
    conf = f"""# written by hasupd_lab.apache.write_lab_config for node {node_name}
ServerRoot "{base}"
ServerName {node_name}
PidFile "{base}/httpd.pid"
DefaultRuntimeDir "{run_dir}"
Mutex file:{run_dir} default
ErrorLog "{base}/error.log"
LogLevel warn
Listen {listen}
{loads}
TypesConfig /etc/mime.types
User {user}
Group {user}
DocumentRoot "{docroot}"
DirectoryIndex index.html
<Directory "{docroot}">
    Require all granted
</Directory>
ExtendedStatus On
<Location /server-status>
    SetHandler server-status
    Require local
    Require all granted
</Location>
"""
    path = base / "httpd.conf"
    path.write_text(conf)
    return str(path)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
