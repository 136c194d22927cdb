#define _GNU_SOURCE
#include "CProcessSpawn.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- In the child (async-signal-safe system calls; libcap-ng only sets capabilities and ids). ---- */

static unsigned long mount_flags(int flags) {
    unsigned long f = 0;
    if (flags & QBX_JAIL_RDONLY) f |= MS_RDONLY;
    if (flags & QBX_JAIL_NOSUID) f |= MS_NOSUID;
    if (flags & QBX_JAIL_NODEV) f |= MS_NODEV;
    if (flags & QBX_JAIL_NOEXEC) f |= MS_NOEXEC;
    return f;
}

static int run_step(const struct qbx_jail_step *s) {
    switch (s->kind) {
    case QBX_JAIL_DIR:
        if (mkdir(s->target, (mode_t)s->mode) != 0 && errno != EEXIST) return errno;
        return 0;
    case QBX_JAIL_SYMLINK:
        if (symlink(s->source, s->target) != 0) return errno;
        return 0;
    case QBX_JAIL_TMPFS:
        if (mkdir(s->target, 0755) != 0 && errno != EEXIST) return errno;
        if (mount("tmpfs", s->target, "tmpfs", mount_flags(s->flags), "size=64k,nr_inodes=256,mode=0755") != 0)
            return errno;
        return 0;
    case QBX_JAIL_PROCFS:
        if (mkdir(s->target, 0555) != 0 && errno != EEXIST) return errno;
        if (mount("proc", s->target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible,subset=pid") != 0)
            return errno;
        return 0;
    case QBX_JAIL_BIND_DIR:
    case QBX_JAIL_BIND_FILE: {
        if (s->kind == QBX_JAIL_BIND_DIR) {
            if (mkdir(s->target, 0755) != 0 && errno != EEXIST) return errno;
        } else {
            int fd = open(s->target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd < 0) return errno;
            close(fd);
        }
        if (mount(s->source, s->target, NULL, MS_BIND | MS_REC, NULL) != 0) return errno;
        unsigned long f = mount_flags(s->flags);
        if (f && mount(NULL, s->target, NULL, MS_REMOUNT | MS_BIND | f, NULL) != 0) return errno;
        return 0;
    }
    default:
        return EINVAL;
    }
}

int qbx_jail_enter(const struct qbx_jail *jail, int *stage, int *index) {
    *stage = QBX_STAGE_UNSHARE;
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0) return errno;
    /* Nothing mounted from here on propagates back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return errno;
    *stage = QBX_STAGE_ROOT;
    if (mount("tmpfs", jail->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") != 0)
        return errno;
    *stage = QBX_STAGE_STEP;
    for (int i = 0; i < jail->step_count; i++) {
        *index = i;
        int e = run_step(&jail->steps[i]);
        if (e != 0) return e;
    }
    *index = 0;
    *stage = QBX_STAGE_PIVOT;
    if (mount(NULL, jail->root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) return errno;
    if (chdir(jail->root) != 0) return errno;
    /* pivot_root(".", "."): the old root ends up stacked on the new one, then is detached. */
    if (syscall(SYS_pivot_root, ".", ".") != 0) return errno;
    if (umount2(".", MNT_DETACH) != 0) return errno;
    if (chdir("/") != 0) return errno;

    *stage = QBX_STAGE_IDENTITY;
    if (setgroups((size_t)jail->group_count, (const gid_t *)jail->groups) != 0) return errno;
    capng_clear(CAPNG_SELECT_ALL);
    if (capng_change_id((int)jail->uid, (int)jail->gid, CAPNG_CLEAR_BOUNDING | CAPNG_CLEAR_AMBIENT) != 0)
        return EPERM;
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0) return errno;
    if (ruid != jail->uid || euid != jail->uid || suid != jail->uid || rgid != jail->gid || egid != jail->gid
        || sgid != jail->gid)
        return EPERM;
    /* Root again must be impossible. */
    if (setuid(0) == 0) return EPERM;
    return 0;
}

int qbx_jail_seccomp(const struct qbx_jail *jail) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    if (jail->filter_count <= 0) return 0;
    struct sock_fprog prog = {
        .len = (unsigned short)jail->filter_count,
        .filter = (struct sock_filter *)jail->filter,
    };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return errno;
    return 0;
}

/* ---- In the parent. ---- */

int qbx_seccomp_compile(const char *const *names, int count, int log_only, void **out, int *out_count, int *bad_index) {
    *out = NULL;
    *out_count = 0;
    *bad_index = -1;
    scmp_filter_ctx ctx = seccomp_init(log_only ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
    if (!ctx) return -ENOMEM;
    /* The filter is loaded by the child itself, after PR_SET_NO_NEW_PRIVS. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    int rc = 0;
    for (int i = 0; i < count; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR) {
            *bad_index = i;
            rc = -EINVAL;
            goto done;
        }
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc != 0) goto done;
    }
    int fd = memfd_create("qemubox-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto done;
    }
    rc = seccomp_export_bpf(ctx, fd);
    if (rc == 0) {
        off_t size = lseek(fd, 0, SEEK_END);
        if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 || size > 65536 * 8) {
            rc = -EIO;
        } else {
            void *buf = malloc((size_t)size);
            if (!buf) {
                rc = -ENOMEM;
            } else if (pread(fd, buf, (size_t)size, 0) != size) {
                rc = -EIO;
                free(buf);
            } else {
                *out = buf;
                *out_count = (int)(size / (off_t)sizeof(struct sock_filter));
            }
        }
    }
    close(fd);
done:
    seccomp_release(ctx);
    return rc;
}
