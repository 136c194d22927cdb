#ifndef CPROCESS_SPAWN_H
#define CPROCESS_SPAWN_H

#include <sys/types.h>

/// A TAP device the child creates (in its network namespace, before any jail) and
/// installs as descriptor `target`: `IFF_TAP | IFF_NO_PI`, plus `IFF_VNET_HDR` if
/// `vnet_hdr`. With `vhost_target >= 0`, `/dev/vhost-net` is opened there too.
struct qbx_tap {
    const char *name;
    int target;
    int vnet_hdr;
    int vhost_target;
};

/// Kinds of ``qbx_jail_step``.
enum {
    /// `mkdir(target, mode)`.
    QBX_JAIL_DIR = 1,
    /// Bind-mount the directory `source` on `target` (created as a directory).
    QBX_JAIL_BIND_DIR = 2,
    /// Bind-mount the file `source` on `target` (created as an empty file).
    QBX_JAIL_BIND_FILE = 3,
    /// `symlink(source, target)`.
    QBX_JAIL_SYMLINK = 4,
    /// A tmpfs on `target` (created as a directory), `mode` its root's mode.
    QBX_JAIL_TMPFS = 5,
    /// procfs on `target` with hidepid=invisible,subset=pid: the child sees its own
    /// processes (same uid) and their pid directories, nothing else of /proc.
    QBX_JAIL_PROCFS = 6,
};

/// Mount flags of a ``qbx_jail_step`` (binds are remounted with them).
enum {
    QBX_JAIL_RDONLY = 1,
    QBX_JAIL_NOSUID = 2,
    QBX_JAIL_NODEV = 4,
    QBX_JAIL_NOEXEC = 8,
};

/// One step of building a jail's root. `target` is a full host path under the root.
struct qbx_jail_step {
    int kind;
    int flags;
    const char *source;
    const char *target;
    unsigned int mode;
};

/// A jail for the child (Firecracker's jailer is the model), applied after the
/// network namespace, TAPs and descriptors are in place and before exec:
/// new mount and IPC namespaces; every mount private; a tmpfs on `root` (an existing
/// empty directory) built by `steps`, remounted read-only and made the root with
/// `pivot_root` (the old root detached); the supplementary groups set to `groups`,
/// gid and uid changed and every capability dropped, bounding and ambient sets
/// included (libcap-ng); `PR_SET_NO_NEW_PRIVS`; then the seccomp program `filter`
/// (`struct sock_filter[filter_count]`, none if 0), the last step before exec.
struct qbx_jail {
    const char *root;
    const struct qbx_jail_step *steps;
    int step_count;
    unsigned int uid;
    unsigned int gid;
    const unsigned int *groups;
    int group_count;
    const void *filter;
    int filter_count;
};

/// What ``qbx_spawn`` starts.
struct qbx_spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    /// `fd_map[2*i]` (a descriptor here) becomes `fd_map[2*i+1]` in the child.
    const int *fd_map;
    int fd_map_count;
    /// A network namespace to join, or -1; without one, `new_netns` non-zero gives the
    /// child a new, empty one of its own.
    int netns_fd;
    int new_netns;
    /// `PR_SET_PDEATHSIG` (if > 0), set after any change of credentials (which clears it).
    int death_signal;
    /// Non-zero: the child becomes a session (and process group) leader, `setsid`.
    int new_session;
    /// Non-zero: the child runs with `ADDR_NO_RANDOMIZE` in its personality (inherited
    /// across exec); best effort, a failing `personality` call is ignored.
    int no_address_randomization;
    const struct qbx_tap *taps;
    int tap_count;
    /// NULL: no jail.
    const struct qbx_jail *jail;
    /// Non-zero: the child's nice value becomes `nice_value` (`setpriority`, before anything
    /// else runs in it, so that every thread it makes inherits it); best effort.
    int set_nice;
    int nice_value;
};

/// Where a failed ``qbx_spawn`` child stopped (with `*out_index` the step, TAP or descriptor).
enum {
    QBX_STAGE_FORK = 0,
    QBX_STAGE_NETNS = 1,
    QBX_STAGE_TAP = 2,
    QBX_STAGE_VHOST = 3,
    QBX_STAGE_FDS = 4,
    QBX_STAGE_UNSHARE = 5,
    QBX_STAGE_ROOT = 6,
    QBX_STAGE_STEP = 7,
    QBX_STAGE_PIVOT = 8,
    QBX_STAGE_IDENTITY = 9,
    QBX_STAGE_DEATHSIG = 10,
    QBX_STAGE_SECCOMP = 11,
    QBX_STAGE_EXEC = 12,
};

/// Forks and execs `request->path`, returning 0 and the child's pid in `out_pid`, or
/// an errno value with the stage (and step index) the child failed at; exec failures
/// are reported too (through a CLOEXEC pipe).
///
/// In the child, before exec: all signal dispositions are reset and the mask
/// cleared; with `new_session` it becomes a session leader (`setsid`), so signals aimed
/// at the owner's process group do not reach it and its own group can be signalled whole; it joins or creates its network namespace,
/// creates the TAPs there, installs the descriptors (every other one is closed on
/// exec), enters the jail if one is given, and sets `PR_SET_PDEATHSIG` (exiting at
/// once if the parent is already gone). Only async-signal-safe calls run in the child.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked exits, so call this from
/// a thread that lives as long as the owner process.
int qbx_spawn(const struct qbx_spawn_request *request, pid_t *out_pid, int *out_stage, int *out_index);

/// Compiles a seccomp allow-list with libseccomp for the native architecture: the
/// system calls named in `names` are allowed, any other kills the process
/// (`SCMP_ACT_KILL_PROCESS`), a foreign architecture too; with `log_only`, any other
/// is allowed and logged by the kernel's audit (`SCMP_ACT_LOG`), to find what a list lacks. On success returns 0 and a
/// malloc'd `struct sock_filter` array in `*out` (free it) with `*out_count` entries;
/// a name libseccomp does not know returns -EINVAL with its index in `*bad_index`;
/// other failures a negative errno.
int qbx_seccomp_compile(const char *const *names, int count, int log_only, void **out, int *out_count, int *bad_index);

#endif
