"""DRBD simulator: DRBD 8.4.11 + drbd-utils 9.22 as seen from the command line,
for machines without the DRBD kernel module (the lab, the tests).

Per node, one daemon (``python -m hasupd_lab.drbdsim.daemon --node NAME
--config SIM.json [--module available|loaded|missing]``) runs inside the
node's network namespace and plays the kernel module; shims in the node's
bin directory (``drbdadm``, ``drbdsetup``, ``modprobe``, ``rmmod``, and
``drbdsim`` for test control) hand their command line to it over a UNIX
socket (the path is baked into the shim; ``DRBDSIM_SOCKET`` for client.py
run by hand).  ``harness.SimCluster`` writes the config and the shims,
starts both daemons and cleans up; put ``SimCluster.bin_dir(node)`` first on
the node's PATH (``SimCluster.env(node)`` does it).

What the lab points hasupd at:

* ``drbd.status_path``: the node's ``/proc/drbd``-format file
  (``SimCluster.status_path(node)``), present only while the module is loaded;
* ``drbd.resources[].device`` / the filesystem device: a block device node
  made with mknod at ``SimCluster.device(node)`` while the node is Primary
  (it is the loop device of the current data image; absent on a Secondary);
* ``drbd.resources[].disk``: the node's backing disk, a loop device on a 1 MiB
  file (``SimCluster.disk(node)``); ``losetup -d`` of it fails the disk: the
  node goes Diskless within ~0.25 s.

Model.  The replication link is a real TCP connection on the resource's port
from one node's address to the other's (the node whose name sorts first
connects, the other accepts); pings every ``ping_int`` and a silence of
``ping_int + ping_timeout`` is a lost connection, so a cut cable, an nft drop
or a frozen node disconnects it for real.  A peer whose processes were killed
(EOF without goodbye) is treated as a crashed machine, which sends no FIN:
noticed when its pings stop, as DRBD would.  ``drbdadm down``/``disconnect``
say goodbye: the peer notices at once.  Data lives in image files
in a directory shared by the two nodes: while connected both nodes point at
one image and only the Primary attaches a loop device to it; a node that
promotes while disconnected copies the image to a new one of its own (so an
image is never mounted twice), and starts a new data generation (DRBD's
current UUID), as does a Primary that loses its peer; only from an empty
bitmap slot, as 8.4 does.  A Primary that crashes keeps its generation and
comes back "crashed primary".  On reconnect the generations decide with
8.4's uuid_compare rule by rule (``generations.py``, checked against the
real captures): the side that moved on while the other did not is SyncSource
(the target adopts its image), a crashed Primary resyncs its peer (rule 40),
both moved on = split brain (both StandAlone, ``split-brain`` handler)
until one side connects with ``--discard-my-data``.
Resync takes max(``resync_min_s``, KiB written while apart /
``resync_rate_kib``) with progress in /proc/drbd, ``drbdadm status`` and
``events2 --statistics``.  Metadata (generation, disk state, peer outdated,
image) persists per node in ``state_dir/RES.md.json``; a restarted daemon is a
rebooted node (module unloaded, resources down).  ``state_dir/kern.log`` has
the kernel-log lines (``Split-Brain detected but unresolved, dropping
connection!``, helper calls, PingAck).

Handlers (``fence-peer``, ``unfence-peer``, ``split-brain``, ...) run as shell
commands with DRBD's environment (DRBD_RESOURCE, DRBD_MINOR, DRBD_PEER,
DRBD_PEERS, DRBD_PEER_ADDRESS, DRBD_PEER_AF, DRBD_CONF); fence-peer exit
3/4/5/7 marks the peer Outdated (Inconsistent for 3), 6 outdates this node.
"""
