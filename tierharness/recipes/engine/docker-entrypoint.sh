#!/bin/sh
# Before dockerd, what docker's own dind script does to run an engine in a container, for
# the same reasons. PID 1 is tini: dockerd reaps none of the containerd shims that are
# reparented to PID 1 when they daemonise, and the zombies would pile up.
set -eu

# cgroup v2: a cgroup that holds processes cannot hand controllers to its children
# ("no internal processes"), so the inner engine could not make its containers' cgroups.
# Move every process of the container's cgroup root into a child, then enable all the
# root's controllers for its children. A pid gone in between ("cat" itself) is no error.
# Under cgroup v1 (no cgroup.controllers) each controller is a hierarchy of its own, and
# a privileged container may create cgroups in it as it is.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
    sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control
fi

# Mount propagation for the inner engine's bind mounts (`--mount ...,bind-propagation=`):
# the container's root is private by default.
mount --make-rshared /

exec "$@"
